"""The one exception type for mistakes the user can fix.

The CLI catches it and prints its message as a single line with exit code 2;
anything else escaping is a bug in onnx2mcu and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: the message names the file/node/op and says what to do."""
