"""How many children a grade starts, measured side by side in one run: the answer key and a few
mistakes of the corpus (among them one in the RNN step, whose callers are all retried), graded with
two jobs on every unit but the training ones, (a) as the grader does: one child per 32 quick checks,
up to jobs (grade.SandboxRunner.children_for), and the retries of the units above a wrong one run
together (rules.Resolution.ahead); (b) with every dispatch split over `jobs` children; (c) with
each unit's retry in children of its own. The children started, the wall-clock seconds and the CPU
seconds the whole machine spent (children included, from /proc/stat), and their ratios. Best on a
quiet machine: the CPU figure counts every process.

Usage: .venv/bin/python -m bench.children_per_family [--mistakes 6]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

from autograder.grade import SandboxRunner, grade
from autograder.results import GradingOptions
from autograder.rules import Resolution
from autograder.sandbox import Session
from autograder.units import UNITS
from tests import mutants as M

FAST_UNITS = tuple(u.name for u in UNITS if not u.training)


def machine_cpu_seconds():
    user, nice, system, _idle, _iowait, irq, softirq = map(int, open("/proc/stat").readline().split()[1:8])
    return (user + nice + system + irq + softirq) / 100


def timed(folders):
    """(children started, wall seconds, machine CPU seconds) of grading each folder with two jobs."""
    children, run = [0], Session.run

    def counted(self, *args, **kwargs):
        children[0] += 1
        return run(self, *args, **kwargs)
    Session.run = counted
    cpu, started = machine_cpu_seconds(), time.monotonic()
    try:
        for folder in folders:
            grade(folder, GradingOptions(units=FAST_UNITS, jobs=2))
    finally:
        Session.run = run
    return children[0], time.monotonic() - started, machine_cpu_seconds() - cpu


def replaced(cls, name, function, folders):
    """timed(folders) with cls.name replaced by function."""
    original = getattr(cls, name)
    setattr(cls, name, function)
    try:
        return timed(folders)
    finally:
        setattr(cls, name, original)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mistakes", type=int, default=6)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sample = M.MUTANTS[::max(1, len(M.MUTANTS) // args.mistakes)]
        picks = [s for s in M.MUTANTS if s.name == "relu_instead_of_tanh"]
        picks += [s for s in sample if s not in picks][:args.mistakes - 1]
        folders = [M.answer_key()] + [s.build(Path(tmp) / s.name) for s in picks if not s.units]
        grade(folders[0], GradingOptions(units=FAST_UNITS, jobs=2))  # the process's first grade builds caches
        rule = timed(folders)
        split = replaced(SandboxRunner, "children_for", lambda self, family: self.options.jobs, folders)
        alone = replaced(Resolution, "ahead", lambda self, unit, swaps: [], folders)
    print("%d grades (answer key, %d mistakes), jobs=2:" % (len(folders), len(folders) - 1))
    for label, (children, wall, cpu) in (("as graded", rule), ("every dispatch over 2 children", split),
                                         ("each retry in its own children", alone)):
        print("  %-32s %3d children, %5.1f s wall, %5.1f s CPU (%.2fx the wall, %.2fx the CPU of the first)"
              % (label, children, wall, cpu, wall / rule[1], cpu / rule[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
