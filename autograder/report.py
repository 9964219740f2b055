"""Front ends' views of a list of TestResult: a terminal table and Gradescope's results.json."""
import json
import os
import tempfile
from pathlib import Path

from .units import UNITS


def unit_scores(results):
    """{unit name: (score, max score)} in UNITS order, for the units that were graded."""
    scores = {}
    for r in results:
        got, top = scores.get(r.unit, (0.0, 0.0))
        scores[r.unit] = (got + r.score, top + r.max_score)
    return {u.name: scores[u.name] for u in UNITS if u.name in scores}


def table(results):
    """A per-test table, then per-unit and total scores, as text."""
    lines = []
    for r in results:
        first, *rest = r.output.splitlines() or [""]
        lines.append("%6.2f / %-5.2f %s%s\n               %s" % (
            r.score, r.max_score, r.name, "" if r.public else "  [hidden]", first))
        lines.extend("               " + line for line in rest)
    lines.append("")
    for unit, (got, top) in unit_scores(results).items():
        lines.append("%6.2f / %-6.2f %s" % (got, top, unit))
    total, top = sum(r.score for r in results), sum(r.max_score for r in results)
    lines.append("TOTAL %.2f / %.2f" % (total, top))
    return "\n".join(lines)


def gradescope(results, seconds):
    """The results.json document in Gradescope's format."""
    return {
        "score": round(sum(r.score for r in results), 4),
        "execution_time": round(seconds, 2),
        "tests": [{"name": r.name, "score": round(r.score, 4), "max_score": round(r.max_score, 4),
                   "output": r.output, "visibility": "visible" if r.public else "after_published"}
                  for r in results],
    }


def write_json_atomically(path, document):
    """Write JSON to path through a temporary file and a rename: never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name)
    with os.fdopen(fd, "w") as f:
        json.dump(document, f, indent=1)
    os.replace(tmp, path)
