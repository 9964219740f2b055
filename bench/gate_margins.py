"""The gates' margins (README rule 7), side by side for each gate check:

- the reference's time on it and the limit grading gives it (check_factor x that, at least
  gate_seconds);
- the slowest submission of the corpus (tests/mutants.py: the answer key, every typical mistake
  and every correct variant): honest code, right or wrong, must fit with a wide margin;
- a backward pass by finite differences (tests/mutants.py FINITE_DIFFERENCES: two forward passes
  per input element), its time estimated from a few elements of each input.

Every time is the best of 3 runs in this process, one BLAS thread, as in the sandbox.
Usage: .venv/bin/python -m bench.gate_margins
"""
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads, as in the sandbox
ROOT = Path(__file__).resolve().parent.parent

import numpy as np

from autograder.reference import all_checks, load_impl_from, reference_impl
from autograder.sandbox import Limits
from tests import mutants as M


def best(run, times=3):
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return min(seconds)


def load(folder, name):
    """The captioning package in folder, imported as `name`, as the checks see it."""
    return load_impl_from(folder / "captioning", name)


def finite_difference_seconds(check, fd):
    """The time FINITE_DIFFERENCES (imported as fd) would take on check: its eval_numerical_gradient
    timed on 5 elements of each array, times the array's size."""
    cost = []

    def sampled(f, x, verbose=True, h=1e-5):
        k = min(5, x.size)
        started = time.perf_counter()
        for _ in range(2 * k):
            f(x)
        cost.append(x.size * (time.perf_counter() - started) / k)
        return np.zeros_like(x)
    fd.rnn_layers.eval_numerical_gradient = sampled
    check.run(fd)
    return sum(cost)


def main():
    limits = Limits()
    gates = [c for c in all_checks().values() if c.gate]
    with tempfile.TemporaryDirectory(prefix="bench-gates-") as tmp:
        corpus = [("answer key", reference_impl())]
        fd = load(M.FINITE_DIFFERENCES.build(Path(tmp) / "fd"), "bench_finite_differences")
        for n, sub in enumerate(M.MUTANTS + M.ALTERNATIVES):
            corpus.append((sub.name, load(sub.build(Path(tmp) / sub.name), "bench_submission_%d" % n)))
        print("%-30s %9s %8s %9s  %-38s %7s %9s %9s" % ("gate", "reference", "limit", "slowest", "(submission)",
                                                       "margin", "FD (est.)", "FD/limit"))
        for check in gates:
            reference = best(lambda: check.run(reference_impl()))
            limit = max(limits.gate_seconds, limits.check_factor * reference)
            slowest, who = 0.0, "-"
            for name, impl in corpus:
                try:
                    seconds = best(lambda: check.run(impl))
                except Exception:  # a mistake that raises: it fails the check, not the clock
                    continue
                if seconds > slowest:
                    slowest, who = seconds, name
            fd_time = finite_difference_seconds(check, fd)
            print("%-30s %7.1f ms %6.2f s %7.1f ms  %-38s %6.0fx %7.0f s %8.0fx" % (
                check.unit[:30], 1e3 * reference, limit, 1e3 * slowest, who[:38], limit / slowest, fd_time,
                fd_time / limit))


if __name__ == "__main__":
    main()
