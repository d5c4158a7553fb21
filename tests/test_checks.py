"""Checks that can fail: `run`, `check` and `simulate` exit 1 when an output is outside
tolerance (numpy allclose semantics), 0 when all agree, 2 on bad input; NaN and Inf are
mismatches unless both sides have them at the same place; no temporary folders are left."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from onnx2mcu import cli
from onnx2mcu.simulator.compare import Tolerance, compare
from onnx2mcu.simulator.run_c import EXTRA_CFLAGS_ENV

HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
needs_host = pytest.mark.skipif(not HAVE_HOST, reason="gcc / make not installed")


# ----- the comparison ------------------------------------------------------------
def test_nan_on_one_side_fails_and_is_not_dropped():
    ours = {"y": np.full((2, 3), np.nan, np.float32)}
    theirs = {"y": np.ones((2, 3), np.float32)}
    agreement = compare(ours, theirs)
    assert not agreement.ok
    assert agreement.max_abs_err == np.inf
    assert agreement.outputs[0].mismatches == 6


def test_nan_and_inf_at_the_same_place_agree():
    ours = {"y": np.array([np.nan, np.inf, -np.inf, 1.0], np.float32)}
    theirs = {"y": np.array([np.nan, np.inf, -np.inf, 1.0], np.float32)}
    assert compare(ours, theirs).ok
    flipped = {"y": np.array([np.nan, -np.inf, -np.inf, 1.0], np.float32)}
    result = compare(flipped, theirs)
    assert not result.ok and result.outputs[0].worst_index == (1,)


def test_relative_error_ignores_elements_below_atol():
    """A saturated sigmoid near 3e-6 with an absolute error of 1e-7 is not '3.8%' off."""
    theirs = {"y": np.array([2.6e-6, 3.0e-6, 0.5], np.float32)}
    ours = {"y": np.array([2.7e-6, 3.1e-6, 0.5], np.float32)}
    agreement = compare(ours, theirs)
    assert agreement.ok
    assert agreement.max_rel_err == 0.0
    assert agreement.max_abs_err == pytest.approx(1e-7, rel=1e-2)


def test_allclose_semantics_and_worst_element():
    theirs = {"a": np.zeros((4, 4), np.float32), "b": np.ones(3, np.float32)}
    ours = {"a": np.zeros((4, 4), np.float32), "b": np.array([1.0, 1.5, 1.0], np.float32)}
    ours["a"][2, 1] = 1e-3
    tight = compare(ours, theirs, Tolerance(atol=1e-4, rtol=1e-3))
    assert [o.name for o in tight.failed] == ["a", "b"]
    assert tight.outputs[0].worst_index == (2, 1)
    assert tight.outputs[1].worst_index == (1,)
    assert "FAIL" in tight.table() and "[2, 1]" in tight.table()
    loose = compare(ours, theirs, Tolerance(atol=0.6, rtol=0.0))
    assert loose.ok
    # the same numbers as np.allclose, element by element
    for name in theirs:
        assert (compare({name: ours[name]}, {name: theirs[name]}, Tolerance(atol=1e-4, rtol=1e-3)).ok
                == np.allclose(ours[name], theirs[name], atol=1e-4, rtol=1e-3))


def test_integer_outputs_are_exact_unless_lsb_allowed():
    ours = {"q": np.array([1, 2, -128], np.int8)}
    theirs = {"q": np.array([1, 3, -128], np.int8)}
    assert not compare(ours, theirs).ok
    assert compare(ours, theirs, Tolerance(int_lsb=1)).ok
    assert not compare({"m": np.array([True, False])}, {"m": np.array([True, True])},
                       Tolerance(int_lsb=5)).ok


def test_bad_tolerance_is_a_user_error():
    assert cli.main(["run", "nowhere", "--host", "--atol", "-1"]) == 2


# ----- the CLI exit codes ---------------------------------------------------------
@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("checks") / "cnn"
    assert cli.main(["compile", "--example", "cnn", "-o", str(out)]) == 0
    return out


def _run_cli(args, env_extra=None, tmpdir=None):
    import os

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "onnx2mcu.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def _corrupt_weights(project: Path, dest: Path, word: str) -> Path:
    """A copy of the project with its first weight word replaced (a deliberately wrong build)."""
    shutil.copytree(project, dest)
    path = dest / "model_weights.h"
    text = path.read_text()
    start = text.index("0x", text.index("= {{"))
    path.write_text(text[:start] + word + text[start + 18:])
    return dest


@needs_host
def test_run_agreeing_exits_0(project, capsys):
    assert cli.main(["run", str(project), "--host"]) == 0
    out = capsys.readouterr().out
    assert "agree" in out and "| probabilities |" in out and "FAIL" not in out


@needs_host
def test_run_wrong_weight_exits_1_and_names_the_element(project, tmp_path, capsys):
    bad = _corrupt_weights(project, tmp_path / "bad", "0x3f8000003f800000")
    assert cli.main(["run", str(bad), "--host"]) == 1
    out = capsys.readouterr().out
    assert "DISAGREE" in out and "| probabilities | float32 |" in out and "FAIL" in out
    assert "outputs disagree" in out and "element [0, " in out
    # a tolerance that covers the error accepts it
    assert cli.main(["run", str(bad), "--host", "--atol", "1", "--rtol", "0"]) == 0


@needs_host
def test_run_all_nan_outputs_exit_1_with_infinite_error(project, tmp_path, capsys):
    bad = tmp_path / "nan"
    shutil.copytree(project, bad)
    path = bad / "model_weights.h"
    text = path.read_text()
    head, _, tail = text.partition("= {{")
    body, _, rest = tail.partition("}}")
    words = body.count("0x")
    nan_words = ",".join(["0x7fc000007fc00000"] * words)
    path.write_text(head + "= {{" + nan_words + "}}" + rest)
    assert cli.main(["run", str(bad), "--host", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["max_abs_err"] == float("inf")
    assert data["agreement"]["outputs"][0]["mismatches"] == data["agreement"]["outputs"][0]["elements"]


def test_run_on_bad_input_exits_2(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "missing"), "--host"]) == 2
    assert capsys.readouterr().err.startswith("onnx2mcu: error: ")


@needs_host
def test_check_with_a_wrong_kernel_exits_1_and_leaves_no_temp_folder(tmp_path):
    """The host build's CFLAGS hook swaps floorf for a wrong one (softmax's exp loses its range
    reduction: the probabilities go wrong)."""
    wrong = tmp_path / "wrong_floorf.h"
    wrong.write_text("#include <math.h>\n#define floorf(x) ((x) * 0.0f)\n")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = _run_cli(["check", "--example", "cnn"], {EXTRA_CFLAGS_ENV: f"-include {wrong}"}, tmp)
    assert proc.returncode == 1, proc.stderr
    assert "| host |" in proc.stdout and "FAIL" in proc.stdout
    assert "host outputs disagree" in proc.stdout
    assert list(tmp.glob("onnx2mcu-*")) == []
    good = _run_cli(["check", "--example", "cnn"], tmpdir=tmp)
    assert good.returncode == 0, good.stdout + good.stderr
    assert list(tmp.glob("onnx2mcu-*")) == []


def test_simulate_exit_code_follows_the_verdict(monkeypatch, capsys):
    assert cli.main(["simulate", "--example", "cnn"]) == 0
    capsys.readouterr()
    import onnx2mcu.simulator as simulator

    real = simulator.simulate

    def wrong_simulator(*args, **kwargs):  # a deliberately wrong kernel in the simulator
        result = real(*args, **kwargs)
        result.outputs = {k: v + np.float32(0.01) for k, v in result.outputs.items()}
        return result

    monkeypatch.setattr(simulator, "simulate", wrong_simulator)
    assert cli.main(["simulate", "--example", "cnn"]) == 1
    out = capsys.readouterr().out
    assert "DISAGREE" in out and "FAIL" in out
    assert cli.main(["simulate", "--example", "cnn", "--atol", "0.02"]) == 0
    assert cli.main(["simulate", "--example", "cnn", "--no-check"]) == 0


# ----- interrupted compiles ---------------------------------------------------------
def _complete(project: Path) -> bool:
    report = json.loads((project / "report.json").read_text())
    prefix = report["prefix"]
    needed = [f"{prefix}.c", f"{prefix}.h", f"{prefix}_weights.h", "main.c", "Makefile", "test_inputs.npz",
              "source.onnx"]
    wrong = "other" if prefix == "model" else "model"
    return (prefix in ("model", "other") and all((project / n).exists() for n in needed)
            and not (project / f"{wrong}.c").exists())


def test_killed_compile_leaves_old_or_new_and_next_compile_cleans_up(tmp_path):
    import signal
    import time

    out = tmp_path / "proj"
    assert cli.main(["compile", "--example", "cnn", "-o", str(out)]) == 0
    for delay in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0):
        proc = subprocess.Popen([sys.executable, "-m", "onnx2mcu.cli", "compile", "--example", "cnn",
                                 "-o", str(out), "--prefix", "other"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert out.is_dir() and _complete(out), delay
    # a staging folder a killed compile left (pid gone) is removed by the next compile
    stale = tmp_path / ".proj.onnx2mcu-staging-999999999-abcd"
    (stale / "half").mkdir(parents=True)
    assert cli.main(["compile", "--example", "cnn", "-o", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]
    assert json.loads((out / "report.json").read_text())["prefix"] == "model"
