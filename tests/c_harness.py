"""Build C sources with the host compiler and call them from Python.

A small, dependency-free helper for tests: compile sources into a shared
library (`compile_shared`), load it with ctypes (`load`), or only check that
sources compile for another target (`compile_objects`, e.g. with
arm-none-eabi-gcc).  `ptr` passes numpy arrays to C.

    lib = build_and_load(runtime_sources(), tmp_path, name="kernels")
    f = declare(lib, "o2m_relu_f32", None, c_int32, c_void_p, c_void_p)
    f(x.size, ptr(x), ptr(y))
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

STRICT_CFLAGS: tuple[str, ...] = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
HOST_CFLAGS: tuple[str, ...] = STRICT_CFLAGS + ("-O2", "-fPIC")
SANITIZE_FLAGS: tuple[str, ...] = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                                   "-fno-omit-frame-pointer")
if os.environ.get("ONNX2MCU_SANITIZE_KERNELS"):  # tests/test_sanitize.py runs the kernel tests so
    HOST_CFLAGS += SANITIZE_FLAGS
CORTEX_M4_FLAGS: tuple[str, ...] = (
    "-mcpu=cortex-m4",
    "-mthumb",
    "-mfloat-abi=hard",
    "-mfpu=fpv4-sp-d16",
)


class CompileError(RuntimeError):
    """The compiler refused the sources; the message holds its command and output."""


def runtime_dir() -> Path:
    """Folder of the runtime_c kernels (package data of onnx2mcu.runtime_c)."""
    import onnx2mcu.runtime_c as runtime_c

    return Path(runtime_c.__file__).resolve().parent


def runtime_sources() -> list[Path]:
    return sorted(runtime_dir().glob("*.c"))


def have_compiler(cc: str) -> bool:
    return shutil.which(cc) is not None


def _run(cmd: list[str], timeout: float) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise CompileError(f"{' '.join(cmd)}\nexit {proc.returncode}\n{proc.stdout}{proc.stderr}")


def _include_flags(sources: Sequence[Path], include_dirs: Iterable[Path | str]) -> list[str]:
    dirs: list[str] = []
    for d in [*include_dirs, *(Path(s).resolve().parent for s in sources)]:
        flag = f"-I{d}"
        if flag not in dirs:
            dirs.append(flag)
    return dirs


def compile_shared(
    sources: Sequence[Path | str],
    out_dir: Path | str,
    *,
    name: str = "lib",
    cc: str = "gcc",
    cflags: Sequence[str] = HOST_CFLAGS,
    include_dirs: Iterable[Path | str] = (),
    defines: Iterable[str] = (),
    libs: Iterable[str] = ("m",),
    timeout: float = 300.0,
) -> Path:
    """Compile and link `sources` into `out_dir/<name>-<hash>.so`; returns its path.

    The hash covers the command and the sources' contents, so rebuilding
    unchanged sources reuses the library and a changed source gets a new file
    (a loaded .so cannot be replaced safely in the same process).
    """
    sources = [Path(s) for s in sources]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        *cflags,
        *_include_flags(sources, include_dirs),
        *(f"-D{d}" for d in defines),
    ]
    digest = hashlib.sha256()
    digest.update(" ".join([cc, *args, *libs]).encode())
    for s in sources:
        digest.update(s.read_bytes())
    out = out_dir / f"{name}-{digest.hexdigest()[:12]}.so"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp.so")  # parallel builders do not collide
        _run([cc, *args, "-shared", "-o", str(tmp), *map(str, sources), *(f"-l{l}" for l in libs)], timeout)
        tmp.replace(out)
    return out


def compile_objects(
    sources: Sequence[Path | str],
    out_dir: Path | str,
    *,
    cc: str = "gcc",
    cflags: Sequence[str] = STRICT_CFLAGS,
    include_dirs: Iterable[Path | str] = (),
    timeout: float = 300.0,
) -> list[Path]:
    """Compile each source with `-c` (no link); returns the object files."""
    sources = [Path(s) for s in sources]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inc = _include_flags(sources, include_dirs)
    objects = []
    for s in sources:
        obj = out_dir / (s.stem + ".o")
        _run([cc, *cflags, *inc, "-c", str(s), "-o", str(obj)], timeout)
        objects.append(obj)
    return objects


def load(path: Path | str) -> ctypes.CDLL:
    return ctypes.CDLL(str(Path(path).resolve()))


def build_and_load(sources: Sequence[Path | str], out_dir: Path | str, **kwargs) -> ctypes.CDLL:
    return load(compile_shared(sources, out_dir, **kwargs))


def declare(lib: ctypes.CDLL, name: str, restype, *argtypes):
    """Set a function's signature (so ints and floats convert) and return it."""
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


def ptr(array: np.ndarray | None) -> ctypes.c_void_p | None:
    """Pointer to a C-contiguous numpy array's first element (None for None).

    The returned ctypes object keeps the array alive, so temporaries such as
    `ptr(np.array(dims, np.int32))` are safe as call arguments.
    """
    if array is None:
        return None
    if not array.flags["C_CONTIGUOUS"]:
        raise ValueError("array must be C-contiguous")
    return array.ctypes.data_as(ctypes.c_void_p)


def i32(values: Iterable[int]) -> np.ndarray:
    """A contiguous int32 array (dims, strides...) to pass with `ptr`."""
    return np.ascontiguousarray(np.asarray(list(values), dtype=np.int32))
