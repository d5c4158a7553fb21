"""Sanitized C: the generated C of every model in ../shared/models and of the built-in
examples, built on the host with AddressSanitizer and UndefinedBehaviorSanitizer
(`-fsanitize=address,undefined -fno-sanitize-recover=all`, through the host Makefile's
EXTRA_CFLAGS hook, simulator/run_c.EXTRA_CFLAGS_ENV) and run: any finding aborts the
program, which fails the run; the outputs must still agree with onnxruntime."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from onnx2mcu.build import compile_model
from onnx2mcu.errors import UserError
from onnx2mcu.examples import EXAMPLES, build_example
from onnx2mcu.runner import run_project_dir
from onnx2mcu.simulator.run_c import EXTRA_CFLAGS_ENV

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
MODELS = sorted(SHARED_MODELS.rglob("*.onnx")) if SHARED_MODELS.is_dir() else []
SANITIZE = "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g"


def _sanitizers_work() -> bool:
    if shutil.which("gcc") is None or shutil.which("make") is None:
        return False
    probe = subprocess.run(["gcc", *SANITIZE.split(), "-x", "c", "-", "-o", "/dev/null"],
                           input="int main(void){return 0;}", capture_output=True, text=True)
    return probe.returncode == 0


needs_sanitizers = pytest.mark.skipif(not _sanitizers_work(),
                                      reason="gcc with libasan/libubsan not installed")


@pytest.fixture
def sanitized(monkeypatch):
    monkeypatch.setenv(EXTRA_CFLAGS_ENV, SANITIZE)
    # a finding must end the program with an error exit, never be logged and ignored
    monkeypatch.setenv("ASAN_OPTIONS", "abort_on_error=0:halt_on_error=1:detect_leaks=1:exitcode=86")
    monkeypatch.setenv("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1:exitcode=87")


def _check(model, out_dir: Path) -> dict:
    compile_model(model, out_dir, board="host", time_limit=10)
    data = run_project_dir(str(out_dir), "host", timeout=600)
    assert data["ok"], data["table"]
    return data


def test_the_hook_reaches_the_compiler(tmp_path, monkeypatch):
    """A wrong flag through the hook breaks the build: the flags are really used."""
    monkeypatch.setenv(EXTRA_CFLAGS_ENV, "-fno-such-flag-onnx2mcu")
    compile_model(build_example("cnn"), tmp_path / "p", board="host")
    with pytest.raises(UserError, match="no-such-flag"):
        run_project_dir(str(tmp_path / "p"), "host")


@needs_sanitizers
def test_a_sanitizer_finding_fails_the_run(tmp_path, sanitized):
    """An out-of-bounds read planted in model_run is caught and fails the run."""
    out = tmp_path / "p"
    compile_model(build_example("cnn"), out, board="host")
    source = out / "model.c"
    text = source.read_text()
    body = text.index("{", text.index("int model_run("))
    planted = "{ volatile int probe[2] = {0, 0}; volatile int i = 2; probe[0] = probe[i]; }"
    source.write_text(text[:body + 1] + planted + text[body + 1:])
    with pytest.raises(UserError, match="exited with code 8[67]"):
        run_project_dir(str(out), "host")


@needs_sanitizers
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_is_sanitizer_clean(name, tmp_path, sanitized):
    _check(build_example(name), tmp_path / name)


@needs_sanitizers
@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_shared_model_is_sanitizer_clean(path, tmp_path, sanitized):
    _check(str(path), tmp_path / path.stem)


@pytest.mark.slow
def test_kernel_unit_tests_are_sanitizer_clean():
    """The runtime_c kernels' own unit tests (tests/test_kernels_c.py), rebuilt with
    -fsanitize=address,undefined -fno-sanitize-recover=all (tests/c_harness.py reads
    ONNX2MCU_SANITIZE_KERNELS) and loaded into a Python that has ASan preloaded."""
    import shutil
    import subprocess
    import sys

    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    if not os.path.isabs(libasan):
        pytest.skip("gcc has no libasan.so (install libgcc-12-dev)")
    env = {**os.environ, "ONNX2MCU_SANITIZE_KERNELS": "1", "LD_PRELOAD": libasan,
           "ASAN_OPTIONS": "detect_leaks=0", "OPENBLAS_NUM_THREADS": "1"}
    tests = Path(__file__).parent / "test_kernels_c.py"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           "-k", "not cortex", str(tests)], env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout
