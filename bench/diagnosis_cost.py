"""What naming the mistake costs (issue #22: at most 20% on a submission with three wrong units,
nothing on a correct one): grade() of the answer key and of the answer key with three typical
mistakes (three units wrong), each with the diagnosis on and off (autograder.diagnosis.Diagnosis's
observe and hints made no-ops), best of --repeats; and the seconds spent inside the diagnosis itself
(summed over the judging threads, so an upper bound of its share of the wall time).

Usage: .venv/bin/python -m bench.diagnosis_cost [--repeats 3] [--units no-training|all]
"""
import argparse
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from autograder import diagnosis
from autograder.course import SOLUTIONS_DIR
from autograder.grade import grade
from autograder.mistakes import BY_ID
from autograder.results import GradingOptions
from autograder.units import UNITS
from tests import mutants as M

THREE_WRONG = ("lstm_gate_order_ifgo", "rnn_backward_no_carry", "decoder_backward_no_relu_mask")


@contextmanager
def diagnosis_off():
    """grade() with the diagnosis's two steps made no-ops."""
    saved = diagnosis.Diagnosis.observe, diagnosis.Diagnosis.hints
    diagnosis.Diagnosis.observe = lambda self, title, result, passed, swaps=(): None
    diagnosis.Diagnosis.hints = lambda self, state, verdicts, by_unit: {}
    try:
        yield
    finally:
        diagnosis.Diagnosis.observe, diagnosis.Diagnosis.hints = saved


@contextmanager
def time_inside(spent):
    """Adds to spent[0] the seconds spent in observe and hints (summed over threads)."""
    saved = diagnosis.Diagnosis.observe, diagnosis.Diagnosis.hints

    def timed(method):
        def run(*args):
            started = time.perf_counter()
            try:
                return method(*args)
            finally:
                spent[0] += time.perf_counter() - started
        return run
    diagnosis.Diagnosis.observe, diagnosis.Diagnosis.hints = timed(saved[0]), timed(saved[1])
    try:
        yield
    finally:
        diagnosis.Diagnosis.observe, diagnosis.Diagnosis.hints = saved


def best_time(folder, units, repeats, off):
    """(best wall seconds of grade(), seconds inside the diagnosis in that run, hinted units, seconds
    inside the diagnosis in the first run: the variants built, the public checks' answers computed)."""
    best, first = None, None
    for _ in range(repeats):
        spent = [0.0]
        with (diagnosis_off() if off else time_inside(spent)):
            started = time.monotonic()
            results = grade(folder, GradingOptions(units=units, jobs=2))
            seconds = time.monotonic() - started
        first = spent[0] if first is None else first
        if best is None or seconds < best[0]:
            best = (seconds, spent[0], sorted({r.unit for r in results if r.diagnosis}))
    return best + (first,)


def measure(repeats=3, units=None):
    """[(label, seconds off, seconds on, seconds inside, hinted units)] for the answer key and the
    three-mistake submission."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-diagnosis-") as tmp:
        three = M.Submission("three_wrong", sum((BY_ID[m].edits for m in THREE_WRONG), ())).build(Path(tmp) / "s")
        grade(SOLUTIONS_DIR, GradingOptions(units=["rnn_step_forward"]))  # warm up: sandbox preflight, reference
        for label, folder in (("answer key", SOLUTIONS_DIR), ("three wrong units", three)):
            off = best_time(folder, units, repeats, off=True)
            on = best_time(folder, units, repeats, off=False)
            rows.append((label, off[0], on[0], on[1], on[2], on[3]))
    return rows


def report(rows, units_label):
    lines = []
    for label, off, on, inside, hinted, first in rows:
        lines.append("diagnosis, %s (%s, jobs=2, best of runs): %.2f s without, %.2f s with (%+.0f%%); %.3f s "
                     "inside the diagnosis (%.0f%% of the grade; %.3f s in a process's first grade); hints on %s" % (
                         label, units_label, off, on, 100 * (on - off) / off, inside, 100 * inside / on, first,
                         ", ".join(hinted) or "no unit"))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--units", default="no-training", choices=("no-training", "all"))
    args = parser.parse_args(argv)
    units = None if args.units == "all" else [u.name for u in UNITS if not u.training]
    print(report(measure(args.repeats, units), "all units" if units is None else "%d units" % len(units)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
