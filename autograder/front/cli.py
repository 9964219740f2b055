"""python -m autograder SUBMISSION [--results results.json] [--public] [--min-isolation container] [...]
   python -m autograder batch SUBMISSIONS_DIR --out GRADES_DIR [--workers N] [--force]
   python -m autograder cluster scheduler|worker ...   (a Dask cluster for batch --scheduler)

The --results file gets the ordinary mode of a new file (0666 minus the umask; its folder decides
who can reach it), unlike batch outputs, which are private (see report.py).
Exit status: 0 graded (whatever the score), 2 nothing to grade (results.json says why), 3 the
sandbox does not work on this machine, or the machine ran out of memory before any of the
submission's functions ran (nothing graded, the line says why).
"""
from __future__ import annotations

import argparse
import sys

from ..grade import grade, sandbox_layers
from ..intake import SubmissionError
from ..report import table, write_json_atomically
from ..results import GradingOptions, GradingResults
from ..sandbox import OutOfMemory, SandboxError, add_limit_arguments, limits_from
from ..text import clean_line


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["batch"]:  # a submission folder literally named batch: pass ./batch
        from .batch import main as batch_main
        return batch_main(argv[1:])
    if argv[:1] == ["cluster"]:
        from .cluster import serve
        return serve(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.split("\n")[0],
                                     epilog="grade a whole class: python -m autograder batch --help")
    parser.add_argument("submission", help="a folder laid out like release/image_captioning/, or a zip of it")
    parser.add_argument("--results", help="write Gradescope-format results.json here")
    parser.add_argument("--public", action="store_true", help="run only the public checks (student self-check)")
    add_limit_arguments(parser)
    args = parser.parse_args(argv)
    try:
        limits = limits_from(args)
        layers = sandbox_layers(limits)
        print("isolation: " + "; ".join(layers), file=sys.stderr)
        results = grade(args.submission, GradingOptions(limits=limits, public_only=args.public))
    except (SandboxError, OutOfMemory) as exc:  # the grader's problem, never the student's: no grade at all
        print("cannot grade: %s" % exc, file=sys.stderr)
        return 3
    except SubmissionError as exc:
        print("cannot grade %s: %s" % (clean_line(args.submission), clean_line(exc)), file=sys.stderr)
        if args.results:  # Gradescope still needs a results.json: score 0 and the reason
            write_json_atomically(args.results, GradingResults.not_gradable(str(exc)).to_gradescope(), mode=None)
        return 2
    print(table(results))
    if args.results:
        write_json_atomically(args.results, results.to_gradescope(), mode=None)
    return 0
