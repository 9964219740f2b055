"""Hidden checks under per-grade seeds, in-process (no sandbox), over many seeds:

1. the answer key and every correct variant (tests/mutants.py ALTERNATIVES) pass every hidden
   check for every seed: a seed drawn per grade must never fail a correct submission;
2. every mistake of the corpus (MUTANTS) fails at least one check (public or hidden) of each unit
   it must lose, for every seed (what the grader then blames is tests/test_corpus.py's).

Usage: .venv/bin/python -m bench.hidden_seeds [--seeds 100] [--mutant-seeds 10]
"""
import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from autograder.reference import checks_for, checks_module, load_impl_from, reference_impl
from tests import mutants as M


def load(folder, name):
    """The Impl of the captioning package in folder, imported under name."""
    return load_impl_from(folder / "captioning", name)


def failing(impl, checks, expected, units=None):
    """{title: message} of the checks (of units, or the hidden ones) impl fails."""
    C, found = checks_module(), {}
    for title, check in checks.items():
        if (units is None and check.public) or (units is not None and check.unit not in units):
            continue
        if check.unit.startswith("overfit"):
            continue
        try:
            passed, message = C.judge_outputs(check, check.run(impl), reference_impl(), expected(title))
        except Exception as exc:
            passed, message = False, "%s: %s" % (type(exc).__name__, exc)
        if not passed:
            found[title] = message.split("\n")[0]
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--mutant-seeds", type=int, default=10)
    args = parser.parse_args(argv)
    C = checks_module()
    with tempfile.TemporaryDirectory(prefix="bench-seeds-") as tmp:
        correct = {"answer key": reference_impl()}
        correct.update({s.name: load(s.build(Path(tmp) / s.name), "alt_" + s.name) for s in M.ALTERNATIVES})
        mutants = {s: load(s.build(Path(tmp) / s.name), "mut_" + s.name) for s in M.MUTANTS}
        false_failures = missed = 0
        for seed in range(max(args.seeds, args.mutant_seeds)):
            checks, cache = checks_for(seed), {}

            def expected(title):
                if title not in cache:
                    cache[title] = C.expected_values(checks[title], reference_impl())
                return cache[title]
            if seed < args.seeds:
                for name, impl in correct.items():
                    for title, message in failing(impl, checks, expected).items():
                        false_failures += 1
                        print("seed %d: %s fails %s: %s" % (seed, name, title, message))
            if seed < args.mutant_seeds:
                for sub, impl in mutants.items():
                    for unit in sub.lost:
                        if not unit.startswith("overfit") and not failing(impl, checks, expected, {unit}):
                            missed += 1
                            print("seed %d: mutant %s passes every check of %s" % (seed, sub.name, unit))
    print("correct submissions (%d) x %d seeds: %d hidden-check failures; mutants (%d) x %d seeds: %d units "
          "missed" % (len(correct), args.seeds, false_failures, len(mutants), args.mutant_seeds, missed))
    return int(bool(false_failures or missed))


if __name__ == "__main__":
    sys.exit(main())
