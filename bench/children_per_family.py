"""How many children share a family's checks (grade.SandboxRunner.children_for), measured side by
side in one run: the answer key and a few mistakes of the corpus, graded with two jobs on every unit
but the training ones, (a) as the grader does (one child per 32 quick checks, up to jobs) and (b)
with every dispatch split over `jobs` children, as before; the wall-clock seconds and the CPU
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
from autograder.units import UNITS
from tests import mutants as M

FAST_UNITS = tuple(u.name for u in UNITS if not u.training)


def machine_cpu_seconds():
    user, nice, system, _idle, _iowait, irq, softirq = map(int, open("/proc/stat").readline().split()[1:8])
    return (user + nice + system + irq + softirq) / 100


def timed(folders):
    """(wall seconds, machine CPU seconds) of grading each folder with two jobs."""
    cpu, started = machine_cpu_seconds(), time.monotonic()
    for folder in folders:
        grade(folder, GradingOptions(units=FAST_UNITS, jobs=2))
    return time.monotonic() - started, machine_cpu_seconds() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mistakes", type=int, default=6)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        picks = M.MUTANTS[::max(1, len(M.MUTANTS) // args.mistakes)][:args.mistakes]
        folders = [M.answer_key()] + [s.build(Path(tmp) / s.name) for s in picks if not s.units]
        grade(folders[0], GradingOptions(units=FAST_UNITS, jobs=2))  # the process's first grade builds caches
        rule = timed(folders)
        original = SandboxRunner.children_for
        SandboxRunner.children_for = lambda self, family: self.options.jobs
        try:
            split = timed(folders)
        finally:
            SandboxRunner.children_for = original
    print("%d grades (answer key, %d mistakes), jobs=2: children_for %.1f s wall, %.1f s CPU; every dispatch "
          "over 2 children %.1f s, %.1f s CPU (%.2fx the wall, %.2fx the CPU)"
          % (len(folders), len(folders) - 1, *rule, *split, split[0] / rule[0], split[1] / rule[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
