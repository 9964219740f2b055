"""Grade one submission: run every check in the sandbox, compare in this process, score units.

The reference implementation and the check definitions are loaded from source/ (trusted); the
submission's student files run only in sandboxed children (autograder.sandbox).
"""
import ast
import importlib.util
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .course import REFERENCE_PACKAGE
from .hidden import hidden_checks
from .intake import STUDENT_FILES, SubmissionError, find_package, stage, unpack  # noqa: F401 (re-exported)
from .sandbox import Limits, run_checks
from .units import BY_NAME, UNITS

SOURCE = REFERENCE_PACKAGE
PARTNERS = {"rnn_step_forward": "rnn_step_backward", "rnn_forward": "rnn_backward",
            "lstm_step_forward": "lstm_step_backward", "lstm_forward": "lstm_backward",
            "word_embedding_forward": "word_embedding_backward"}
PARTNERS.update({b: a for a, b in list(PARTNERS.items())})
NOT_IMPLEMENTED = "not implemented yet"


def load_reference():
    """The reference (solution) package from source/, imported under its own name."""
    name = "reference_captioning"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SOURCE / "__init__.py",
                                                      submodule_search_locations=[str(SOURCE)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


REFERENCE = load_reference()
C = importlib.import_module(REFERENCE.__name__ + ".checks")
REF_IMPL = C.load_impl(REFERENCE)
CHECKS = C.PUBLIC_CHECKS + hidden_checks(C)


def child_sources(public_only):
    """The trusted source texts every child needs (no expected values, no reference code)."""
    sources = {"gradient_check": (SOURCE / "gradient_check.py").read_text(),
               "checks": (SOURCE / "checks.py").read_text()}
    if not public_only:
        sources["hidden"] = Path(__file__).with_name("hidden.py").read_text()
    return sources


def reference_sources(swaps):
    """Reference code for a retry: only the swapped layer functions.

    Swapping a model method needs the whole reference model and layers; that only happens for
    the training unit, which has no code of the student's to call them from.
    """
    text = (SOURCE / "rnn_layers.py").read_text()
    if any(name.startswith("CaptioningRNN.") for name in swaps):
        return {"ref_layers": (SOURCE / "layers.py").read_text(), "ref_rnn_layers": text,
                "ref_rnn": (SOURCE / "classifiers" / "rnn.py").read_text()
                .replace("from ..layers import", "from .ref_layers import")
                .replace("from ..rnn_layers import", "from .ref_rnn_layers import")}
    wanted = set(swaps)
    functions = [ast.get_source_segment(text, node) for node in ast.parse(text).body
                 if isinstance(node, ast.FunctionDef) and node.name in wanted]
    return {"ref_rnn_layers": "\n\n\n".join(["import numpy as np"] + functions) + "\n"}


@dataclass
class TestResult:
    """One graded test, as every front end reports it."""
    unit: str
    name: str
    score: float
    max_score: float
    output: str
    public: bool


def split_for_workers(ids, jobs):
    """Spread check ids over `jobs` children, the slow training checks first, one each."""
    slow = [i for i in ids if CHECKS[i].unit.startswith("overfit")]
    groups = [[] for _ in range(max(1, jobs))]
    for n, i in enumerate(slow):
        groups[n % len(groups)].append(i)
    for i in ids:
        if i not in slow:
            min(groups, key=lambda g: sum(20 if CHECKS[j].unit.startswith("overfit") else 1 for j in g)).append(i)
    return [g for g in groups if g]


def timeouts_for(limits):
    return {i: limits.train_seconds if c.unit.startswith("overfit") else limits.check_seconds
            for i, c in enumerate(CHECKS)}


def run_in_children(scratch, ids, sources, limits, jobs, swaps=()):
    """run_checks over several children at once: {id: ChildResult}."""
    timeouts = timeouts_for(limits)
    groups = split_for_workers(ids, jobs)
    with ThreadPoolExecutor(len(groups)) as pool:
        parts = pool.map(lambda g: run_checks(scratch, g, timeouts, sources, limits, swaps), groups)
        return {k: v for part in parts for k, v in part.items()}


_expected_cache = {}


def judge(check_id, result):
    """(passed, message) of one child result, compared here against trusted expected values."""
    check = CHECKS[check_id]
    if result.error:
        return False, result.error
    try:
        if check_id not in _expected_cache:
            _expected_cache[check_id] = C.expected_values(check, REF_IMPL)
        passed, message = C.judge_outputs(check, result.outputs, REF_IMPL, _expected_cache[check_id])
    except Exception as exc:  # outputs the trusted side cannot even evaluate
        return False, "your outputs could not be evaluated: %s: %s" % (type(exc).__name__, str(exc)[:200])
    if not check.public and not passed:
        message = message.split("\n")[0]  # never show hidden expected values
    return passed, message


def retry_plan(check_id, broken_units):
    """The broken units to swap for the reference when retrying a failed check, or ().

    A forward pass swapped in brings its backward pass along (they share the cache layout),
    except when that backward pass is the unit being graded.
    """
    unit = CHECKS[check_id].unit
    swaps = set()
    for dep in BY_NAME[unit].depends:
        if dep in broken_units and dep != unit:
            swaps.add(dep)
            if dep in PARTNERS and PARTNERS[dep] != unit:
                swaps.add(PARTNERS[dep])
    return tuple(sorted(swaps))


def grade(submission, public_only=False, units=None, limits=None, jobs=2):
    """Grade a submission folder or zip: a list of TestResult, one per check."""
    limits = limits or Limits()
    wanted = [u.name for u in UNITS if units is None or u.name in units]
    ids = [i for i, c in enumerate(CHECKS) if c.unit in wanted and (c.public or not public_only)]
    sources = child_sources(public_only)
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        tmp = Path(tmp)
        (tmp / "unpacked").mkdir()
        folder = find_package(unpack(submission, tmp / "unpacked"))
        scratch = tmp / "scratch"
        scratch.mkdir()
        stage(folder, scratch)
        tmp.chmod(0o711)  # the sandbox's throwaway user may reach scratch/ (its group's), nothing else
        results = run_in_children(scratch, ids, sources, limits, jobs)
        verdicts = {i: judge(i, results[i]) + (results[i].warnings,) for i in ids}
        verdicts = retry_broken_dependencies(scratch, ids, verdicts, sources, limits, jobs)
    return [score(i, verdicts[i]) for i in ids]


def retry_broken_dependencies(scratch, ids, verdicts, sources, limits, jobs):
    """Re-run failed checks with broken units they depend on swapped for the reference."""
    failed = [i for i in ids if not verdicts[i][0]]
    unimplemented = {CHECKS[i].unit for i in failed if verdicts[i][1].startswith(NOT_IMPLEMENTED)}
    implemented = {CHECKS[i].unit for i in ids if not verdicts[i][1].startswith(NOT_IMPLEMENTED)}
    # A unit not written yet is not "broken": swapping it in would credit code nobody wrote.
    broken_units = {CHECKS[i].unit for i in failed} - (unimplemented - implemented)
    plans = {}
    for i in failed:
        swaps = () if verdicts[i][1].startswith(NOT_IMPLEMENTED) else retry_plan(i, broken_units)
        if swaps:
            plans.setdefault(swaps, []).append(i)
    for swaps, retry_ids in plans.items():
        results = run_in_children(scratch, retry_ids, dict(sources, **reference_sources(swaps)), limits, jobs, swaps)
        names = ", ".join(swaps)
        for i in retry_ids:
            passed, _ = judge(i, results[i])
            old_passed, old_message, warnings = verdicts[i][:3]
            if passed:
                verdicts[i] = (True, "fails with your %s, passes with the reference %s: no points lost here "
                                     "(fix %s)" % (names, names, names), warnings)
            else:
                verdicts[i] = (False, old_message + " (it fails with the reference %s too)" % names, warnings)
    return verdicts


def score(check_id, verdict):
    """TestResult of one check: the unit's points are split evenly over its checks."""
    check = CHECKS[check_id]
    passed, message, warnings = verdict
    share = BY_NAME[check.unit].points / sum(1 for c in CHECKS if c.unit == check.unit)
    output = ("PASS: " if passed else "FAIL: ") + message
    for warning in warnings:
        output += "\nwarning: " + warning
    return TestResult(check.unit, check.title, share if passed else 0.0, share, output, check.public)


def grade_timed(submission, **kwargs):
    """grade() and the wall time it took, in seconds."""
    started = time.monotonic()
    results = grade(submission, **kwargs)
    return results, time.monotonic() - started
