"""The sandbox's added cost, measured side by side in one run: the same trivial child (apply the
limits, drop to a throwaway uid, import numpy and h5py) started N times plainly, N times in the
full sandbox (bubblewrap namespaces and binds, cgroup) and N times in container mode (the layers
left where namespaces are refused: private folders, uid sweep afterwards), and one answer-key
grade's share of it.

Usage: .venv/bin/python -m bench.sandbox_cost [--n 20]
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from autograder import sandbox
from autograder.course import SOLUTIONS_DIR
from autograder.grade import grade

UID = sandbox.throwaway_uid()
REQUEST = {"probe": True, "limits": {"rlimits": sandbox.Limits().rlimits(), "uid": UID, "gid": UID, "groups": []}}


def plain(n):
    started = time.monotonic()
    for _ in range(n):
        subprocess.run([sys.executable, "-I", str(sandbox.INSIDE / "child.py")], input=json.dumps(REQUEST) + "\n",
                       text=True, check=True, env=sandbox.sandbox_env())
    return (time.monotonic() - started) / n


def sandboxed(n, mode):
    limits = sandbox.Limits()
    cgroup, box = sandbox.Cgroup(limits), sandbox.Box(mode)
    started = time.monotonic()
    try:
        for _ in range(n):
            child = sandbox.Sandboxed("child.py", {"probe": True}, [], box, limits, cgroup, with_submission=False)
            if child.proc.wait() != 0:
                raise SystemExit("the sandboxed probe failed: " + child.tail())
            child.kill()
    finally:
        box.close()
        cgroup.remove()
    return (time.monotonic() - started) / n


def children_per_grade():
    """How many sandboxed processes grading the answer key starts."""
    count = [0]
    original = sandbox.Sandboxed.__init__

    def counting(self, *args, **kwargs):
        count[0] += 1
        original(self, *args, **kwargs)
    sandbox.Sandboxed.__init__ = counting
    try:
        started = time.monotonic()
        grade(SOLUTIONS_DIR)
        return count[0], time.monotonic() - started
    finally:
        sandbox.Sandboxed.__init__ = original


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args(argv)
    bare, boxed, contained = plain(args.n), sandboxed(args.n, "bubblewrap"), sandboxed(args.n, "container")
    children, seconds = children_per_grade()
    print("one child, %d runs each: plain %.3f s, bubblewrap %.3f s (+%.3f s, %.2fx), container mode %.3f s "
          "(+%.3f s, %.2fx)" % (args.n, bare, boxed, boxed - bare, boxed / bare, contained, contained - bare,
                                contained / bare))
    print("answer key: %d sandboxed processes in %.1f s: the sandbox adds about %.2f s (%.0f%%) per submission" % (
        children, seconds, children * (boxed - bare), 100 * children * (boxed - bare) / seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
