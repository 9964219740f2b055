"""What a grade is, apart from who asks for one: the results every front end reports, and the
options a grade is asked for with.

- CheckResult: one graded check (a test of Gradescope's, pytest's, nbgrader's);
- GradingResults: one submission's checks, or why it has none (status), with its totals;
  to_gradescope() / from_document() are Gradescope's results.json, the one stored form;
- GradingOptions: which units, which limits, public checks only, how many children at once.

Every output (the terminal table, results.json, grades.csv, summary.html, nbgrader's cells) is
made from these objects; nothing reads a message back to learn a score, a unit or a status.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterator

from .course import PACKAGE
from .sandbox import Limits, usable_cpus, usable_memory
from .text import clean_line, clean_text
from .units import TOTAL, UNITS, WRITTEN

EPSILON = 1e-9  # scores are rounded to 4 decimals: a check that earned its share within this passed


class Status(str, Enum):
    GRADED = "graded"              # every check of the wanted units has a result
    NOT_GRADABLE = "not_gradable"  # the submission has nothing to grade (reason says why): score 0
    GRADER_ERROR = "grader_error"  # the grader failed: never recorded as the student's grade


@dataclass(frozen=True)
class CheckResult:
    """One graded check: its unit, its name, its points and what the student reads."""
    unit: str
    name: str
    score: float
    max_score: float
    output: str
    public: bool
    diagnosis: dict[str, Any] | None = None  # the typical mistake it carries the hint of: {"mistakes", "hint"}

    @property
    def passed(self) -> bool:
        """Whether the check earned its share."""
        return self.score >= self.max_score - EPSILON

    def to_gradescope(self) -> dict[str, Any]:
        """Gradescope's test object; a diagnosis goes in its "extra_data" (kept, not shown)."""
        test = {"name": clean_line(self.name), "score": round(self.score, 4), "max_score": round(self.max_score, 4),
                "output": clean_text(self.output), "visibility": "visible" if self.public else "after_published",
                "tags": [self.unit]}
        if self.diagnosis:
            test["extra_data"] = {"diagnosis": self.diagnosis}
        return test

    @classmethod
    def from_gradescope(cls, test: dict[str, Any]) -> CheckResult:
        diagnosis = (test.get("extra_data") or {}).get("diagnosis")
        return cls(test["tags"][0], test["name"], test["score"], test["max_score"], test.get("output", ""),
                   test.get("visibility") == "visible", diagnosis if isinstance(diagnosis, dict) else None)


@dataclass(frozen=True)
class GradingResults:
    """One submission's grade: its checks in grading order, or (status not GRADED) the reason."""
    checks: tuple[CheckResult, ...] = ()
    status: Status = Status.GRADED
    reason: str = ""
    seconds: float = 0.0
    isolation: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()  # the student files missing or refused ("captioning/rel"): see stage()

    def __iter__(self) -> Iterator[CheckResult]:
        return iter(self.checks)

    def __len__(self) -> int:
        return len(self.checks)

    def __getitem__(self, index: int) -> CheckResult:
        return self.checks[index]

    @property
    def total(self) -> float:
        return sum(c.score for c in self.checks)

    @property
    def possible(self) -> float:
        return sum(c.max_score for c in self.checks)

    def by_unit(self) -> dict[str, tuple[float, float]]:
        """{unit: (score, possible)} in UNITS order, for the units that were graded."""
        scores: dict[str, tuple[float, float]] = {}
        for c in self.checks:
            got, top = scores.get(c.unit, (0.0, 0.0))
            scores[c.unit] = (got + c.score, top + c.max_score)
        order = [u.name for u in UNITS] + sorted(set(scores) - {u.name for u in UNITS})
        return {name: scores[name] for name in order if name in scores}

    def timed(self, seconds: float, isolation: tuple[str, ...] = ()) -> GradingResults:
        return dataclasses.replace(self, seconds=seconds, isolation=tuple(isolation))

    @classmethod
    def not_gradable(cls, reason: str, seconds: float = 0.0) -> GradingResults:
        return cls(status=Status.NOT_GRADABLE, reason=reason, seconds=seconds)

    def to_gradescope(self) -> dict[str, Any]:
        """Gradescope's results.json: each test tagged with its unit ("tags": [unit]); the output
        opens with the graded files missing from the upload, then what was graded and how, in a
        student's words (summary()); the isolation layers the code ran under (for staff) and the
        missing files go in the top-level "extra_data", which students never see.
        A submission that could not be graded gets score 0 and the reason, without tests."""
        if self.status is not Status.GRADED:
            return {"score": 0.0, "execution_time": round(self.seconds, 2),
                    "output": "Not graded: " + clean_line(self.reason), "tests": []}
        lines = missing_files_lines(self) + self.summary()  # first what is missing, if anything
        document = {"score": round(self.total, 4), "execution_time": round(self.seconds, 2),
                    "tests": [c.to_gradescope() for c in self.checks], "output": clean_text("\n".join(lines))}
        extra = {"isolation": list(self.isolation), "refused": list(self.refused)}
        if any(extra.values()):
            document["extra_data"] = {k: v for k, v in extra.items() if v}
        return document

    def summary(self) -> list[str]:
        """The lines that open a graded submission's feedback: what was graded and how."""
        units = self.by_unit()
        return ["Graded automatically: %d part%s of your captioning package, %g of %g points. Each part has the "
                "public checks of the notebooks' check() cells and hidden checks on other inputs, whose details "
                "are shown once grades are published." % (len(units), "s"[:len(units) != 1], self.total, self.possible),
                "Your code ran in a sandbox, one part at a time: a part that crashes, runs too long or uses too "
                "much memory loses its own points only.",
                "The %d written questions (%g points, %g in all) are graded by hand in the written-answers "
                "assignment, from the PDF that python -m captioning.submit writes."
                % (len(WRITTEN), sum(WRITTEN.values()), TOTAL + sum(WRITTEN.values()))]

    @classmethod
    def from_document(cls, document: Any) -> GradingResults | None:
        """The results of a results.json written before, or None when it is not one this version
        wrote (an older grader's tests lack the "tags" units are read from: graded again)."""
        if not isinstance(document, dict) or not isinstance(document.get("tests"), list):
            return None
        tests = document["tests"]
        if not all(isinstance(t, dict) and t.get("tags") for t in tests):
            return None
        try:
            seconds = float(document.get("execution_time", 0.0))
            if not tests:
                output = str(document.get("output", ""))
                return cls.not_gradable(output.removeprefix("Not graded: "), seconds)
            extra = document.get("extra_data") or {}
            return cls(tuple(CheckResult.from_gradescope(t) for t in tests), seconds=seconds,
                       isolation=tuple(map(str, extra.get("isolation", ()))),
                       refused=tuple(map(str, extra.get("refused", ()))))
        except (KeyError, TypeError, ValueError):
            return None


def default_jobs() -> int:
    """Children run at once for one submission: two, or one where less than two CPUs or 1 GiB of
    memory are usable (Gradescope's container: a child more would not go faster, and a second
    network visualization child holds PyTorch too)."""
    return 2 if usable_cpus() >= 2 and usable_memory() >= 1 << 30 else 1


def missing_files_lines(results: GradingResults) -> list[str]:
    """One line per graded file missing from the upload (or refused): what it costs, the points of
    the checks of the units whose own code is in it, which their checks lose."""
    lines = []
    for path in results.refused:
        module = path.removeprefix(PACKAGE + "/").removesuffix(".py").replace("/", ".")
        units = {u.name for u in UNITS if u.function.split(":")[0] == module}
        lost = sum(c.max_score - c.score for c in results if c.unit in units)
        lines.append("MISSING FILE %s: not in your upload, or refused (its tests say why): its units (%s) lose "
                     "%g points. Upload every file you edit: python -m captioning.submit packs them all."
                     % (path, ", ".join(u for u in dict.fromkeys(c.unit for c in results) if u in units), lost))
    return lines


@dataclass(frozen=True)
class GradingOptions:
    """How a grade is asked for, passed as one value from every front end to grade()."""
    units: tuple[str, ...] | None = None  # the units to report (default: all)
    limits: Limits = field(default_factory=Limits)
    public_only: bool = False             # only the checks students can see (self-check)
    jobs: int = field(default_factory=default_jobs)  # children run at once for one submission

    def __post_init__(self) -> None:
        if self.units is not None:  # any sequence of names, kept as a tuple
            object.__setattr__(self, "units", tuple(self.units))
