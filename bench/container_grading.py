"""Grading in a Gradescope-like container, side by side with grading on this machine: the answer
key graded by the CLI here (bubblewrap mode) and in tests/container.py's box (768 MB, half a CPU,
namespaces refused: container mode), and tests.hostile's CONTAINER_HOSTILE submission (fork flood,
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
from tests.container import Container
from tests.hostile import container_hostile


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
        for name, submission in (("answer key", SOLUTIONS_DIR), ("hostile", hostile)):
            box = Container()
            try:
                results[name] = timed(cli + [submission, "--min-isolation", "container"], kit, box)
                peak = box.peak_mb
            finally:
                box.close()
            results[name] += (peak,)
    key, key_total, key_peak = results["answer key"]
    bad, bad_total, bad_peak = results["hostile"]
    print("answer key: here (bubblewrap, 2 cores) %.1f s; in the box (container mode, half a CPU) %.1f s (%.1fx), "
          "peak %d MB of 768; %s" % (here, key, key / here, key_peak, key_total))
    print("hostile submission in the box: %.1f s (%.0f%% of Gradescope's 10 minutes), peak %d MB; %s"
          % (bad, 100 * bad / 600, bad_peak, bad_total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
