"""Grading in a Gradescope-like container, side by side with grading on this machine: the answer
key graded by the CLI here (bubblewrap mode) and in tools/gradescope_box.py's box (768 MB, and 512 MB,
half a CPU, namespaces refused: container mode), and tests.hostile's CONTAINER_HOSTILE submission (fork flood,
memory bomb, two endless loops, a real-time signal) in the box, against Gradescope's 10-minute limit. Needs root.

Usage: .venv/bin/python -m bench.container_grading
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from autograder.course import REFERENCE_PACKAGE, SOLUTIONS_DIR
from tests.hostile import container_hostile
from tools.gradescope_box import Container, MiB


def timed(argv, cwd, box=None):
    """(seconds, the CLI's TOTAL line) of one grade, in the box when given."""
    started = time.monotonic()
    command, env = (box.command(argv), box.env(os.environ)) if box else (argv, None)
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    total = [line for line in proc.stdout.splitlines() if line.startswith("TOTAL")]
    if not total:
        raise SystemExit("the grade failed: " + proc.stderr[-500:])
    return time.monotonic() - started, total[0]


def main():
    with tempfile.TemporaryDirectory(prefix="bench-container-") as tmp:
        kit = Path(tmp) / "kit"  # the grader's files root-only, as run_autograder makes them
        shutil.copytree(ROOT / "autograder", kit / "autograder", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(REFERENCE_PACKAGE, kit / REFERENCE_PACKAGE.relative_to(ROOT),
                        ignore=shutil.ignore_patterns("__pycache__"))
        kit.chmod(0o700)
        Path(tmp).chmod(0o755)
        hostile = container_hostile(Path(tmp) / "subs")
        cli = [sys.executable, "-m", "autograder"]
        here, here_total = timed(cli + [SOLUTIONS_DIR], kit)
        results = {}
        for name, submission, memory in (("answer key", SOLUTIONS_DIR, 768), ("answer key", SOLUTIONS_DIR, 512),
                                         ("hostile", hostile, 768)):
            box = Container(memory=memory * MiB)
            try:
                results[name, memory] = timed(cli + [submission, "--min-isolation", "container"], kit, box)
                results[name, memory] += (box.peak_mb, box.oom_kills)
            finally:
                box.close()
    key, key_total, key_peak, _ = results["answer key", 768]
    print("answer key: here (bubblewrap, 2 cores) %.1f s; in the box (container mode, half a CPU) %.1f s (%.1fx), "
          "peak %d MB of 768; %s" % (here, key, key / here, key_peak, key_total))
    key, key_total, key_peak, kills = results["answer key", 512]
    print("answer key in a 512 MB box: %.1f s, peak %d MB, %d out-of-memory kills; %s"
          % (key, key_peak, kills, key_total))
    bad, bad_total, bad_peak, _ = results["hostile", 768]
    print("hostile submission in the box: %.1f s (%.0f%% of Gradescope's 10 minutes), peak %d MB; %s"
          % (bad, 100 * bad / 600, bad_peak, bad_total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
