"""nbgrader front end: the hidden part of each notebook test cell calls unit_score(unit)."""
from pathlib import Path

from .grade import grade
from .report import table


def unit_score(unit, submission="."):
    """Grade one unit of the package in `submission` (default: the notebook's folder).

    Prints the unit's test report and returns its points: nbgrader takes a number as a test
    cell's output as partial credit, so the cell scores exactly what `python -m autograder` gives.
    """
    results = grade(Path(submission), units=[unit])
    print(table(results))
    return round(sum(r.score for r in results), 4)
