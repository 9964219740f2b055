"""Feedback that names the mistake (issue #22): match a failing unit against its known typical mistakes.

When a check of a unit fails on the student's own code, the same check (same Check object: a hidden
check's inputs come from the grade's seed) is run on each known mistake of that unit, a variant of
the reference kept on the grader's side (autograder/mistakes.py), and the student's answer is
compared with the variant's under the check's own rule and tolerance. What is kept of a check is the
set of mistakes whose answer matches (the student's outputs are dropped as always); a retry (rule 2)
replaces it with the retry's, whose swapped functions are the reference's, as in a variant.

A unit that ends "is wrong" gets a hint when the mistakes matching every check it fails, and passing
every check it passes, share one hint text: one line, HINT_PREFIX + the hint, on the unit's first
failing test (a public one when there is one). No match, no line; never on a passing unit, nor on a
unit not written, timed out, or trained (the training units are not diagnosed).

The variants are trusted kit code (the reference with a patch), so they run here, in the grader's
process, like the reference does for expected values: each is built once per process from the
reference's source text in a private temporary folder, and runs only for a check that failed, so a
correct submission pays nothing. Only the hint text (public, written in autograder/mistakes.py)
reaches the student: nothing of a hidden check's inputs or expected values.
"""
from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import source.image_captioning.captioning.hints as notebook_hints

from .course import PACKAGE, REFERENCE_PACKAGE
from .mistakes import BY_ID, MISTAKES, of_unit
from .reference import checks_module, load_impl_from, reference_impl
from .rules import State
from .sandbox import ChildResult, child_error
from .units import BY_NAME, closure

HINT_PREFIX = "This looks like a common mistake: "
NOT_MATCHED = frozenset()
PLACE = re.compile(r" \(%s/[\w/]+\.py, line \d+, in [\w<>]+\)$" % re.escape(PACKAGE))
UNMATCHABLE = ("not_implemented", "timeout", "skipped", "import", "crash")  # errors no variant can share
_lock = threading.Lock()
_public_answers = {}  # (title, mistake id): the same for every grade


@dataclass(frozen=True)
class Hint:
    """A unit's diagnosis: the matching mistakes, the hint they share and the test that carries it."""
    mistakes: tuple
    text: str
    title: str

    @property
    def line(self):
        return HINT_PREFIX + self.text + "."

    def as_data(self):
        """What results.json keeps of it (a test's "extra_data"): summary.html counts these."""
        return {"mistakes": list(self.mistakes), "hint": self.text}


# ---------------------------------------------------------------- the variants

def variant_texts(mistake):
    """{path inside the package: source text} of the files a mistake edits, from the reference's."""
    texts = {}
    for edit in mistake.edits:
        rel = edit.file.split("/", 1)[1]
        texts[rel] = edit.apply(texts.get(rel, (REFERENCE_PACKAGE / rel).read_text()))
    return texts


@functools.lru_cache(maxsize=None)
def _folder():
    folder = tempfile.mkdtemp(prefix="mistakes-%d-" % os.getpid())
    atexit.register(shutil.rmtree, folder, True)
    return Path(folder)


@functools.lru_cache(maxsize=None)
def _variant_impl(mistake_id):
    mistake = BY_ID[mistake_id]
    package = _folder() / mistake_id / PACKAGE
    shutil.copytree(REFERENCE_PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for rel, text in variant_texts(mistake).items():
        (package / rel).write_text(text)
    return load_impl_from(package, "mistake_%s_%s" % (mistake_id, PACKAGE))


def variant_impl(mistake_id):
    """The Impl of a mistake's variant, built once per process (under a lock: judges run in threads)."""
    with _lock:
        return _variant_impl(mistake_id)


def answer(check, impl):
    """A check's answer on impl as the grader sees a child's: {key: numeric array}, or the error
    signature (kind, message without its place) that sandbox.child_error would give."""
    try:
        with np.errstate(all="ignore"):  # a variant's overflows are its own business, not the grader's log's
            outputs = check.run(impl)
    except Exception as exc:
        cls = type(exc)
        name = cls.__qualname__ if cls.__module__ == "builtins" else "%s.%s" % (cls.__module__, cls.__qualname__)
        error = {"kind": "exception", "type": name, "detail": str(exc)[:500]}
        return "exception", child_error(error, [], 0).message
    arrays = {}
    for key, value in outputs.items():
        array = np.asarray(value) if value is not None else None
        if array is None or array.dtype == object:
            return "output", "%s is %s, not a numeric array" % (key, type(value).__name__)
        arrays[str(key)] = array
    return arrays


def student_answer(result: ChildResult) -> Any:
    """A child result as answer() gives a variant's: outputs, an error signature, or None (an error
    no variant can share: not written, timed out, skipped, not imported)."""
    if not result.error:
        return result.outputs
    kind = result.error.kind.value
    if kind in UNMATCHABLE:
        return None
    return kind, PLACE.sub("", result.error.message)


def same(check: Any, got: Any, want: Any) -> bool:
    """Whether two answers agree under the check's own rule and tolerance: the notebook's rule
    (captioning/hints.py), so that the grader and check("unit") say the same."""
    return notebook_hints.same(check, got, want)


# ---------------------------------------------------------------- one grade's diagnosis

class Diagnosis:
    """The mistakes each failing check of one grade matches, and the hints they give."""

    def __init__(self, checks, expected):
        self.checks, self.expected = checks, expected  # expected(title): the grade's expected values
        self.matched = {}   # title: frozenset of mistake ids (of the latest run of that check)
        self.failed = set()  # units with a check that failed on the student's own code (no swaps)
        self.answers = {}   # (title, mistake id): the variant's answer on a hidden check of this grade

    def variant(self, title, mistake_id):
        check = self.checks[title]
        cache = _public_answers if check.public else self.answers
        key = (title, mistake_id)
        if key not in cache:
            cache[key] = answer(check, variant_impl(mistake_id))
        return cache[key]

    def observe(self, title, result, passed, swaps=()):
        """Keep which mistakes of its unit a check's answer matches (nothing for a passing one). A
        check run on the student's own code (no swaps) is not matched when a unit its unit depends on
        has failed already: it will be run again with that unit swapped (rule 2), and matched then."""
        unit = self.checks[title].unit
        mistakes = of_unit(unit)
        if not passed and not swaps:
            self.failed.add(unit)
            if self.failed.intersection(closure(unit)):
                mistakes = []
        got = None if passed or BY_NAME[unit].training or not mistakes else student_answer(result)
        if got is None:
            self.matched[title] = NOT_MATCHED
            return
        check = self.checks[title]
        self.matched[title] = frozenset(m.id for m in mistakes if same(check, got, self.variant(title, m.id)))

    def passes(self, title, mistake_id):
        """Whether a mistake passes a check (the student passes it: so must the mistake they made)."""
        C, check = checks_module(), self.checks[title]
        got = self.variant(title, mistake_id)
        if isinstance(got, tuple):
            return False
        try:
            return C.judge_outputs(check, got, reference_impl(), self.expected(title))[0]
        except Exception:
            return False

    def hints(self, states: dict[str, State], verdicts: dict, by_unit: dict[str, list[str]]) -> dict[str, Hint]:
        """{unit: Hint} of the units that end wrong and whose mistakes are told apart."""
        found = {}
        for unit, titles in by_unit.items():
            failing = [t for t in titles if not verdicts[t].passed]
            if states.get(unit) is not State.WRONG or BY_NAME[unit].training or not failing:
                continue
            candidates = functools.reduce(frozenset.intersection, (self.matched.get(t, NOT_MATCHED) for t in failing))
            passing = [t for t in titles if verdicts[t].passed]
            candidates = sorted(m for m in candidates if all(self.passes(t, m) for t in passing))
            texts = {BY_ID[m].hint for m in candidates}
            if len(texts) == 1:
                public = [t for t in failing if self.checks[t].public]
                found[unit] = Hint(tuple(candidates), texts.pop(), (public or failing)[0])
        return found


# ---------------------------------------------------------------- the notebook's fingerprints

def fingerprints():
    """hints.json's data, which the release ships in captioning/ for check("unit") (captioning/hints.py):
    for each public check of a diagnosed unit, each of the unit's mistakes' answer on its (public)
    inputs, or "pass" when the mistake passes it as the notebook judges (numerical gradients of its
    own forward pass). Nothing of the hidden checks, nor of the edits."""
    C, H = checks_module(), notebook_hints
    units = {}
    for mistake in MISTAKES:
        for unit in sorted(mistake.diagnosed):
            known = {}
            impl = variant_impl(mistake.id)
            for check in [c for c in C.PUBLIC_CHECKS if c.unit == unit]:
                got = H.answer(check, impl)
                known[check.name] = "pass" if isinstance(got, dict) and _passes(C, check, got, impl) else H.encode(got)
            units.setdefault(unit, {})[mistake.id] = {"hint": mistake.hint, "checks": known}
    return {"prefix": HINT_PREFIX, "units": units}


def _passes(C, check, outputs, impl):
    """Whether outputs pass a check as the notebook judges them, impl's own forward giving the
    numerical gradients (as `check("unit")` does with the student's)."""
    try:
        with np.errstate(all="ignore"):
            return C.judge_outputs(check, outputs, impl, C.expected_values(check, impl))[0]
    except Exception:
        return False


def fingerprints_json():
    """fingerprints() as the text of hints.json (one line, keys sorted: the same text every release)."""
    import json
    return json.dumps(fingerprints(), sort_keys=True, separators=(",", ":")) + "\n"
