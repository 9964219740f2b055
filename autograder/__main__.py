"""python -m autograder SUBMISSION [--results results.json] [--public]"""
import argparse
import sys

from .grade import SubmissionError, grade_timed
from .report import gradescope, table, write_json_atomically


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.split("\n")[0])
    parser.add_argument("submission", help="a folder laid out like release/image_captioning/, or a zip of it")
    parser.add_argument("--results", help="write Gradescope-format results.json here")
    parser.add_argument("--public", action="store_true", help="run only the public checks (student self-check)")
    args = parser.parse_args(argv)
    try:
        results, seconds = grade_timed(args.submission, public_only=args.public)
    except SubmissionError as exc:
        print("cannot grade %s: %s" % (args.submission, exc), file=sys.stderr)
        return 2
    print(table(results))
    if args.results:
        write_json_atomically(args.results, gradescope(results, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
