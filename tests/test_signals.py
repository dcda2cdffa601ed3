"""Ctrl-C and SIGTERM at any moment of a `voxelmetrics evaluate` run: exit 128 + the signal's
number, the old report untouched, no traceback, no process left behind.

Each run is a child started as the `voxelmetrics` command (so the package defers Keras, as
for a user) that sends itself (or its whole process group, as a terminal does) SIGINT at a
chosen moment, most of them from inside a finalizer: the condition (met by chance once
Python's garbage collector runs often) in which a signal handler runs inside a GC callback
or a finalizer, where Python prints and swallows its exception (JAX's `_xla_gc_callback`,
any `__del__`).
"""

import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()

# The child: `sys.argv[1]` the moment, the rest `voxelmetrics` arguments. A moment is
# `import:MODULE` (as MODULE starts being imported), `call:NAME` (as the function or method
# NAME is first called) or `return:NAME` (once it returned), after optional prefixes:
# `group:` (SIGINT to the whole process group, as a terminal sends it), `swallowed:` (the
# handler runs inside a finalizer, which prints and swallows what it raises, as JAX's GC
# callback does) and `gc:` (the garbage collector forced on every allocation: where such
# callbacks run the handler by themselves; slow, so once).
CHILD = r"""
import gc, importlib, importlib.abc, os, signal, sys
moment, argv = sys.argv[1], sys.argv[2:]
sys.argv[0] = "voxelmetrics"  # as the console script: Keras is imported by the command
flags = set()
while moment.startswith(("group:", "swallowed:", "gc:")):
    flag, _, moment = moment.partition(":")
    flags.add(flag)
kind, _, where = moment.partition(":")

def send():
    os.killpg(0, signal.SIGINT) if "group" in flags else os.kill(os.getpid(), signal.SIGINT)

class Finalizer:
    def __del__(self):
        send()
        for _ in range(1000):  # the handler runs here, inside the finalizer
            pass

def interrupt():
    Finalizer() if "swallowed" in flags else send()

class AtImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == where:
            sys.meta_path.remove(self)
            interrupt()
        return None

def at_call(name):
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest importable prefix
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
            break
        except ImportError:
            continue
    for part in parts[cut:-1]:
        owner = getattr(owner, part)
    original = getattr(owner, parts[-1])
    def patched(*args, **kwargs):
        setattr(owner, parts[-1], original)
        if kind == "call":
            interrupt()
        result = original(*args, **kwargs)
        if kind == "return":
            interrupt()
        return result
    setattr(owner, parts[-1], patched)

if kind == "import":
    sys.meta_path.insert(0, AtImport())
if "gc" in flags:
    gc.set_threshold(1)
import voxelmetrics.cli as cli
if kind != "import":
    at_call(where)
status = cli.main(argv)
gc.set_threshold(700)  # forced at shutdown too, JAX's callback fails there
sys.exit(status)
"""


def _pair(root, cases=2):
    """`cases` cases of 8x6x5 x 3 scores and multi-hot labels."""
    rng = np.random.default_rng(0)
    (root / "pred").mkdir(), (root / "true").mkdir()
    for i in range(cases):
        y_true = (rng.random((8, 6, 5, 3)) < 0.3).astype(np.uint8)
        np.save(root / "pred" / f"c{i}.npy", rng.random(y_true.shape).astype(np.float32))
        np.save(root / "true" / f"c{i}.npy", y_true)
    return str(root / "pred"), str(root / "true")


def _run(moment: str, *args: str) -> subprocess.CompletedProcess:
    """The child in its own session (a group SIGINT reaches it and its workers only); after
    it ended, every process of its group must be gone within a few seconds."""
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, moment, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stdout, stderr = child.communicate(timeout=300)
    deadline = time.monotonic() + 10
    while group_members(child.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_members(child.pid), f"left behind: {group_members(child.pid)}\n{stderr}"
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)


def group_members(group: int) -> list[int]:
    """The live processes of process group `group` (Linux: /proc; zombies count as gone)."""
    members = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.isdigit() and int(fields[2]) == group and fields[0] not in "ZX":
            members.append(int(entry))
    return members


def _report(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())} if out.exists() else {}


MOMENTS = {
    "start-up": "call:voxelmetrics.cli.build_parser",
    "imports": "import:keras",
    "imports, swallowed": "swallowed:import:keras",
    "imports, GC forced": "gc:import:keras.src.ops",
    "first compile, swallowed": "swallowed:call:voxelmetrics.evaluate.streaming._run_chunk",
    "plots, swallowed": "swallowed:import:matplotlib",
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return _pair(tmp_path_factory.mktemp("signals"))


@pytest.fixture(scope="module")
def old_report(dataset, tmp_path_factory):
    """The reports of a finished run, copied for each test to try to replace."""
    from voxelmetrics.cli import main

    out = tmp_path_factory.mktemp("old") / "out"
    args = ["evaluate", *dataset, "--out", str(out), "--quiet", "--bootstrap", "0"]
    assert main([*args, "--plot", "--threshold", "0.3"]) == 0
    return _report(out)


def _with_old_report(tmp_path, old_report):
    out = tmp_path / "out"
    out.mkdir()
    for name, content in old_report.items():
        (out / name).write_bytes(content)
    return out


@pytest.mark.skipif(sys.platform != "linux", reason="reads process groups from /proc")
@pytest.mark.parametrize("moment", list(MOMENTS), ids=list(MOMENTS))
def test_ctrl_c_at_any_moment_stops_with_130_and_the_old_report(
    dataset, old_report, tmp_path, moment
):
    out = _with_old_report(tmp_path, old_report)
    args = ["evaluate", *dataset, "--out", str(out), "--plot", "--quiet", "--bootstrap", "0"]
    run = _run(MOMENTS[moment], *args)
    assert run.returncode == 130, run.stderr
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr, run.stderr
    assert "SIGINT received: stopped" in run.stderr
    assert _report(out) == old_report  # the new run's threshold 0.5 would change report.json


@pytest.mark.skipif(sys.platform != "linux", reason="reads process groups from /proc")
def test_ctrl_c_while_workers_start_stops_them_without_a_traceback(dataset, old_report, tmp_path):
    """SIGINT to the whole group (as a terminal sends it) while the workers import Keras."""
    out = _with_old_report(tmp_path, old_report)
    args = ["evaluate", *dataset, "--out", str(out), "--workers", "2", "--quiet"]
    run = _run("group:swallowed:return:multiprocessing.process.BaseProcess.start", *args)
    assert run.returncode == 130, run.stderr
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr, run.stderr
    assert _report(out) == old_report


@pytest.mark.skipif(sys.platform != "linux", reason="reads process groups from /proc")
def test_an_interrupted_partial_says_no_partial_was_written(dataset, tmp_path):
    part = tmp_path / "part.npz"
    args = ["evaluate", *dataset, "--partial", str(part), "--quiet"]
    run = _run("call:voxelmetrics.evaluate.streaming._run_chunk", *args)
    assert run.returncode == 130, run.stderr
    assert "stopped; no partial written." in run.stderr, run.stderr
    assert list(tmp_path.iterdir()) == []
