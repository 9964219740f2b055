"""Grading speed, measured side by side in one run:

1. seconds per submission: the kit (grade(), all units, jobs=2) vs nbgrader on the same answer key.
   nbgrader: `nbgrader autograde` when the course tree supports it (release/ + gradebook), else
   executing the two notebooks with `jupyter nbconvert --execute` (the bulk of what autograde does);
   the line printed says which was measured, or why nothing was.
2. throughput of a batch of --n copies of the answer key with 1 vs 2 workers (jobs=1 per grade),
   graded on --units (default: every unit but the two overfit ones, to keep the run short).

Usage: .venv/bin/python -m bench.grading_speed [--n 40] [--units all|a,b,...] [--skip-nbgrader]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.batch import run_batch  # noqa: E402
from autograder.grade import grade  # noqa: E402
from autograder.units import UNITS  # noqa: E402

KEY = ROOT / "source" / "image_captioning"
NOTEBOOKS = ("RNN_Captioning.ipynb", "LSTM_Captioning.ipynb")


def time_kit():
    started = time.monotonic()
    results = grade(KEY, jobs=2)
    return time.monotonic() - started, sum(r.score for r in results)


def time_nbgrader(timeout=1800):
    """(seconds, what was measured) or (None, why not)."""
    notebooks = [KEY / n for n in NOTEBOOKS if (KEY / n).is_file()]
    if not notebooks:
        return None, "no notebooks in source/image_captioning yet (another developer is writing them)"
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.exists():
        return None, "jupyter is not installed in the venv"
    release = ROOT / "release" / "image_captioning"
    with tempfile.TemporaryDirectory(prefix="bench-nb-") as tmp:
        if release.is_dir() and (ROOT / "gradebook.db").exists():
            course = Path(tmp) / "course"
            shutil.copytree(ROOT, course, ignore=shutil.ignore_patterns(".venv", ".git", "datasets", "build"))
            os.symlink(ROOT / "datasets", course / "datasets")
            submitted = course / "submitted" / "bench_student" / "image_captioning"
            shutil.copytree(KEY, submitted)
            command = [str(Path(sys.executable).with_name("nbgrader")), "autograde", "image_captioning",
                       "--force", "--create"]
            what, cwd = "nbgrader autograde of the answer key (real course tree copy)", course
        else:
            work = Path(tmp) / "image_captioning"
            shutil.copytree(KEY, work)
            command = [str(jupyter), "nbconvert", "--to", "notebook", "--execute", "--inplace",
                       "--ExecutePreprocessor.timeout=600"] + [str(work / n.name) for n in notebooks]
            what, cwd = ("jupyter nbconvert --execute of the %d answer-key notebooks (no release/ + gradebook "
                         "for real nbgrader autograde yet)" % len(notebooks)), work
        started = time.monotonic()
        try:
            proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, "%s did not finish in %d s" % (what, timeout)
        seconds = time.monotonic() - started
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
            return None, "%s failed after %.1f s: %s" % (what, seconds, tail[0][:200])
        return seconds, what


def time_batch(n, workers, units):
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        subs = Path(tmp) / "subs"
        for i in range(n):
            shutil.copytree(KEY / "captioning", subs / ("s%03d" % i) / "captioning",
                            ignore=shutil.ignore_patterns("__pycache__"))
        started = time.monotonic()
        documents = run_batch(subs, Path(tmp) / "grades", workers=workers, units=units, progress=False)
        seconds = time.monotonic() - started
    assert len(documents) == n
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="submissions in the batch (default 40)")
    parser.add_argument("--units", default="no-overfit", help="'all', 'no-overfit' (default) or a,b,...")
    parser.add_argument("--skip-nbgrader", action="store_true")
    args = parser.parse_args(argv)
    if args.units == "all":
        units = None
    elif args.units == "no-overfit":
        units = [u.name for u in UNITS if not u.name.startswith("overfit")]
    else:
        units = args.units.split(",")

    kit, score = time_kit()
    print("kit (python -m autograder, all units, jobs=2): %.1f s per submission (answer key scored %.1f)" % (kit, score))
    if args.skip_nbgrader:
        print("nbgrader: skipped (--skip-nbgrader)")
    else:
        nb, what = time_nbgrader()
        if nb is None:
            print("nbgrader: not measured: %s" % what)
        else:
            print("nbgrader: %.1f s per submission, measured: %s" % (nb, what))
            print("  ratio nbgrader / kit: %.2fx" % (nb / kit))

    label = "all units" if units is None else ("%d units" % len(units))
    one = time_batch(args.n, 1, units)
    two = time_batch(args.n, 2, units)
    print("batch of %d submissions (%s): 1 worker %.1f s (%.2f s/submission, %.1f/min); "
          "2 workers %.1f s (%.2f s/submission, %.1f/min)" % (
              args.n, label, one, one / args.n, 60 * args.n / one, two, two / args.n, 60 * args.n / two))
    print("  speed-up with 2 workers: %.2fx (on %d cores)" % (one / two, os.cpu_count()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
