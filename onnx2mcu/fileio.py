"""Writing files so that no half-written file or folder is ever left behind.

Every output of onnx2mcu (a PNG, a project folder, a board file) is written
under a temporary name in the same folder and renamed into place: a crash or
Ctrl-C leaves either the old output or the new one, never a mix.  Part of the
core so that any stage can use it without importing the CLI.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Mapping

from onnx2mcu.errors import UserError


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write `data` (text is UTF-8) via a temporary file in the same folder, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


STAGING_TAG = "onnx2mcu-staging"
"""Staging folders are `.<out>.onnx2mcu-staging-<pid>-<random>` beside the output folder;
the pid lets a later compile tell a killed compile's leftovers from a running one's."""


def write_files(folder: Path, files: Mapping[str, str | bytes]) -> None:
    """Write `files` (relative path -> text (UTF-8) or bytes) under `folder`."""
    for rel, content in files.items():
        path = Path(folder) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)


def write_folder_atomic(out_dir: str | os.PathLike, files: Mapping[str, str | bytes],
                        finish: Callable[[Path], None] | None = None) -> Path:
    """Write `files` into a fresh staging sibling folder, let `finish(tmp)` add more, then swap it in.

    The swap is one atomic exchange of the two folder names (Linux renameat2), so a compile
    killed at any point leaves the old folder or the new one at `out_dir`, never a mix; the
    staging folders a killed compile left are removed by the next compile of the same folder."""
    out = Path(out_dir).resolve()
    _make_parent(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; pass another -o")
    remove_stale_staging(out)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{STAGING_TAG}-{os.getpid()}-", dir=out.parent))
    except OSError as exc:
        raise UserError(f"{out.parent}: cannot write the output folder here ({exc.strerror}); "
                        "pick a writable -o") from None
    umask = os.umask(0o22)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would make the project private
    try:
        write_files(tmp, files)
        if finish is not None:
            finish(tmp)
        if out.exists():
            if _exchange(tmp, out):
                shutil.rmtree(tmp, ignore_errors=True)  # now holds the old project
            else:
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.{STAGING_TAG}-{os.getpid()}-old-",
                                            dir=out.parent))
                os.rename(out, old / "x")
                os.rename(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"{out}: cannot write the project ({exc.strerror or exc}); "
                        "check the folder's permissions and free space") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _make_parent(out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"{out}: a parent of the output folder is a file; pick another -o") from None
    except OSError as exc:
        raise UserError(f"{out}: cannot create the output folder's parent ({exc.strerror}); "
                        "pick a writable -o") from None


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove the staging folders of compiles of `out` whose process is gone; when a killed
    compile had moved the old folder aside (non-atomic fallback), put it back first."""
    removed = []
    try:
        candidates = sorted(out.parent.glob(f".{out.name}.{STAGING_TAG}-*"))
    except OSError:
        return removed
    for path in candidates:
        pid_text = path.name[len(f".{out.name}.{STAGING_TAG}-"):].split("-", 1)[0]
        if pid_text.isdigit() and _alive(int(pid_text)):
            continue
        moved_aside = path / "x"
        if path.name.split("-")[-2:-1] == ["old"] and moved_aside.is_dir() and not out.exists():
            os.rename(moved_aside, out)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # an earlier compile in this process finished or failed: its folder is stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0
