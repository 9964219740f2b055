"""A submission whose processes keep forking (issue 29), graded with answer keys after it: in
container mode (tools/gradescope_box.py's Gradescope-like box) by `batch` and on a Dask cluster, and in
bubblewrap mode. Nothing it starts outlives its grade, the classmates graded after it take no
longer, and it loses only the unit it spoiled.

HOPPER's rnn_step_forward starts a chain that forks and lets the parent exit, over and over (its
pid keeps changing, each link in a new session); once its working folder is gone (the grade is
over) it forks 40 busy loops. Every process of it ends by itself within 60 s, and each box is
killed at once afterwards (Container.kill_all), so a failing test leaves nothing running."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder.course import REFERENCE_PACKAGE
from autograder.results import GradingResults
from tests.hostile import ROOT, lost_units, make, processes
from tools.gradescope_box import Container

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="throwaway uids and the box need root")

HOPPER = """
CHAIN = []


def rnn_step_forward(*args):
    import os, time
    end = time.monotonic() + 60  # every process of the chain ends by then, whatever the sweep does
    if not CHAIN and os.fork() == 0:  # one chain (a single process at a time hides best)
        while time.monotonic() < end:
            try:
                os.getcwd()
            except OSError:  # the grade is over (its working folder is gone): burn the CPU
                for _ in range(40):
                    if os.fork() == 0:
                        while time.monotonic() < end:
                            pass
                        os._exit(0)
                os._exit(0)
            try:
                if os.fork():
                    os._exit(0)
                os.setsid()
            except OSError:  # no process left to fork: wait for one
                time.sleep(0.01)
        os._exit(0)
    CHAIN.append(1)
    raise RuntimeError("uid %d" % os.getuid())
"""
UNITS = ",".join(["rnn_step_forward", "rnn_step_backward", "rnn_forward", "word_embedding_forward", "lstm_step_forward",
                  "lstm_step_backward", "lstm_forward"])
KEYS = ("key1", "key2", "key3")
DASK = """
"$0" -m autograder cluster scheduler --port "$PORT" >/dev/null 2>&1 &
"$0" -m autograder cluster worker tcp://127.0.0.1:"$PORT" --nthreads 1 >/dev/null 2>&1 &
exec "$0" "$@" --scheduler tcp://127.0.0.1:"$PORT"
"""


@pytest.fixture(scope="module")
def kit():
    """A root-only copy of the kit (container mode refuses a grader other uids can read) in a
    folder any uid may pass, run with this venv."""
    folder = Path(tempfile.mkdtemp(prefix="test-fork-chain-"))
    folder.chmod(0o755)
    kit = folder / "kit"
    shutil.copytree(ROOT / "autograder", kit / "autograder", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REFERENCE_PACKAGE, kit / REFERENCE_PACKAGE.relative_to(ROOT),
                    ignore=shutil.ignore_patterns("__pycache__"))
    kit.chmod(0o700)
    yield kit
    shutil.rmtree(folder, ignore_errors=True)


def batch_in_box(kit, subs, out, docker=True, dask=False):
    """`batch --min-isolation container` of subs (one at a time, in name order) in a Gradescope-like
    box (container mode), or in a box of cgroups only (bubblewrap mode); on a Dask scheduler and
    worker started in the box when dask. ({student: results}, the live processes of the hopper's
    uids 1 s after its results were written, seen with the box frozen, or None)."""
    argv = [sys.executable, "-m", "autograder", "batch", subs, "--out", out, "--workers", "1",
            "--min-isolation", "container", "--units", UNITS]
    env = dict(os.environ, PORT=str(free_port()))
    if dask:
        argv = ["sh", "-c", DASK, *argv]
    box, hopper, left, log = Container(docker=docker), out / "a-hopper" / "results.json", None, out.parent / "log"
    try:
        with open(log, "w") as stderr:
            proc = subprocess.Popen(box.command(argv), env=box.env(env), cwd=kit, stdout=stderr, stderr=stderr)
            while proc.poll() is None and not hopper.exists():
                time.sleep(0.02)
            if hopper.exists():
                uids = {int(u) for u in re.findall(r"uid (\d+)", hopper.read_text())}
                assert uids, hopper.read_text()
                time.sleep(1)
                box.freeze()  # a hopping chain cannot hide from a scan
                left = processes(uids.__contains__)
                box.freeze(False)
            proc.wait(timeout=600)
    finally:
        box.close()
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert (": container mode" in log.read_text()) == docker, log.read_text()[-3000:]
    return {p.parent.name: GradingResults.from_document(json.loads(p.read_text()))
            for p in out.glob("*/results.json")}, left


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keys(root):
    for name in KEYS:
        make(root, name)
    return root


@pytest.fixture(scope="module")
def alone(kit, tmp_path_factory):
    """{docker: the answer keys' grading times in a batch without the hopper}, as asked for."""
    times = {}

    def seconds(docker):
        if docker not in times:
            root = tmp_path_factory.mktemp("alone")
            grades, _ = batch_in_box(kit, keys(root / "subs"), root / "out", docker)
            times[docker] = sum(grades[k].seconds for k in KEYS)
        return times[docker]
    return seconds


@pytest.mark.slow
@pytest.mark.parametrize("docker,dask", [(True, False), (True, True), (False, False)],
                         ids=["container", "container-dask", "bubblewrap"])
def test_a_fork_hopping_chain_ends_with_its_grade(kit, alone, tmp_path, docker, dask):
    subs = keys(tmp_path / "subs")
    make(subs, "a-hopper", override=HOPPER)
    grades, left = batch_in_box(kit, subs, tmp_path / "out", docker, dask)
    assert left == [], "processes of the hopper's uid 1 s after its grade"
    assert lost_units(grades["a-hopper"]) == {"rnn_step_forward"}
    assert not any(lost_units(grades[k]) for k in KEYS)
    hopped = sum(grades[k].seconds for k in KEYS)
    assert hopped <= 1.5 * alone(docker), (hopped, alone(docker))
