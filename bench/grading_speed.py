"""Grading speed, measured side by side in one run:

1. seconds to grade the answer key (grade(), all units, jobs=2), a submission with an endless loop
   in one function (the answer key with `while True: pass` in rnn_step_forward), and the same
   answer key through `nbgrader autograde` (whose test cells take their points from the kit) and
   through executing its notebooks (what a stock nbgrader autograde does); the ratios;
2. the mistake corpus (tests/mutants.py) graded on every unit, training checks included: how
   many mistakes lose points (the kill rate) and whether they lose exactly their units (a training
   unit above a broken one may lose too, or not: it trains on the submission's own loss);
3. what naming the mistake costs (issue #22; bench/diagnosis_cost.py): the answer key and a
   submission with three wrong units, all units, with the diagnosis on and off;
4. throughput of a batch of --n copies of the answer key with 1 vs 2 workers (jobs=1 per grade),
   graded on --units (default: every unit but the two training ones, to keep the run short).

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

from autograder.course import ASSIGNMENT, SOLUTIONS_DIR, notebooks
from autograder.grade import grade
from autograder.results import GradingOptions
from autograder.units import UNITS
from bench import batch_scale, diagnosis_cost
from tests import mutants as M
from tools.release import copy_student_inputs

BIN = Path(sys.executable).parent


def time_grade(folder):
    started = time.monotonic()
    results = grade(folder, GradingOptions(jobs=2))
    return time.monotonic() - started, sum(r.score for r in results)


def run_timed(command, cwd, timeout=1800):
    """(seconds, None) or (None, why it failed)."""
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ["PATH"]), CAPTIONING_DATASETS=str(ROOT / "datasets"),
               NO_COLOR="1")
    started = time.monotonic()
    try:
        proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "did not finish in %d s" % timeout
    if proc.returncode != 0:
        return None, ((proc.stderr or proc.stdout).strip().splitlines() or ["?"])[-1][:200]
    return time.monotonic() - started, None


def time_nbgrader_autograde():
    """nbgrader autograde of the answer key in a copy of the course (release regenerated there)."""
    with tempfile.TemporaryDirectory(prefix="bench-nb-") as tmp:
        course = Path(tmp) / "course"
        for name in ("source", "release", "tools", "autograder", "nbgrader_config.py"):
            copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copyfile
            copy(ROOT / name, course / name)
        os.symlink(ROOT / "datasets", course / "datasets")
        copy_student_inputs(course)  # what the release reads from the kit besides these
        seconds, error = run_timed([sys.executable, "-m", "tools.release"], course)
        if error:
            return None, error
        shutil.copytree(SOLUTIONS_DIR, course / "submitted" / "bench_student" / ASSIGNMENT)
        return run_timed([str(BIN / "nbgrader"), "autograde", ASSIGNMENT, "--force"], course)


def time_notebook_execution():
    """Executing the answer key's notebooks on a kernel: what a stock nbgrader autograde does."""
    with tempfile.TemporaryDirectory(prefix="bench-exec-") as tmp:
        work = Path(tmp) / ASSIGNMENT
        shutil.copytree(SOLUTIONS_DIR, work)
        return run_timed([str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute", "--inplace",
                          "--ExecutePreprocessor.timeout=600"] + [str(work / n) for n in notebooks()], work)


def kill_rate():
    """(killed, exact, total) over the mistake corpus graded on every unit."""
    killed = exact = 0
    with tempfile.TemporaryDirectory(prefix="bench-mutants-") as tmp:
        for sub in M.MUTANTS:
            results = grade(sub.build(Path(tmp) / sub.name), GradingOptions(jobs=2))
            lost = {u for u, (got, top) in results.by_unit().items() if got < top - 1e-9}
            killed += bool(lost)
            # a training unit above a lost one may lose too, or not: its model's own loss is not swapped
            trained = {u.name for u in UNITS if u.training and lost & set(u.depends)}
            exact += set(sub.lost) <= lost <= set(sub.lost) | trained
    return killed, exact, len(M.MUTANTS)


def time_batch(n, workers, units):
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        subs = batch_scale.answer_keys(Path(tmp) / "subs", n)
        seconds, documents = batch_scale.timed_batch(subs, Path(tmp) / "grades", GradingOptions(units=units),
                                                     workers=workers)
    full = sum(u.points for u in UNITS if units is None or u.name in units)
    assert len(documents) == n and all(abs(d.total - full) < 1e-6 for d in documents.values())
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="submissions in the batch (default 40)")
    parser.add_argument("--units", default="no-training", help="'all', 'no-training' (default) or a,b,...")
    parser.add_argument("--skip-nbgrader", action="store_true")
    args = parser.parse_args(argv)
    if args.units == "all":
        units = None
    elif args.units == "no-training":
        units = [u.name for u in UNITS if not u.training]
    else:
        units = args.units.split(",")

    key, score = time_grade(SOLUTIONS_DIR)
    print("kit, answer key (all units, jobs=2): %.1f s, scored %.1f" % (key, score))
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        loop = M.Submission("loop", (M.Body(M.LAYERS, "rnn_step_forward", "while True:\n    pass\n"),))
        hang, hang_score = time_grade(loop.build(Path(tmp) / "loop"))
    print("kit, endless loop in rnn_step_forward: %.1f s, scored %.1f" % (hang, hang_score))
    print(diagnosis_cost.report(diagnosis_cost.measure(3, None), "all units"))
    if args.skip_nbgrader:
        print("nbgrader: skipped (--skip-nbgrader)")
    else:
        for label, (seconds, error) in (("nbgrader autograde (kit inside)", time_nbgrader_autograde()),
                                        ("notebooks executed (stock nbgrader)", time_notebook_execution())):
            if seconds is None:
                print("%s: not measured: %s" % (label, error))
            else:
                print("%s: %.1f s; ratio to the kit's answer key %.1fx" % (label, seconds, seconds / key))
    killed, exact, total = kill_rate()
    print("mistake corpus, every unit graded (training fixture included): %d/%d mistakes lose points "
          "(kill rate %.0f%%), %d/%d lose exactly their units" % (killed, total, 100 * killed / total, exact, total))

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
