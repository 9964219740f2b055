"""make demo: grade the answer key and the untouched student release, print both scores."""
import sys
from pathlib import Path

from autograder.grade import grade

ROOT = Path(__file__).resolve().parent.parent


def main():
    ok = True
    for label, folder, want in (("answer key", "solutions/image_captioning", 100.0),
                                ("untouched release", "release/image_captioning", 0.0)):
        results = grade(ROOT / folder)
        print("%-18s %-28s %6.2f / %.2f  (%.1f s)" % (label, folder, results.total, results.possible, results.seconds))
        ok &= abs(results.total - want * results.possible / 100) < 1e-6
    if not ok:
        print("unexpected scores: the answer key must score 100%, the release 0", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
