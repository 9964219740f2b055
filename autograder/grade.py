"""Grade one submission: intake -> sandbox -> rules -> results.

The submission is unpacked and staged by intake, every check runs on it in its sandbox Session,
each answer is judged here as it arrives (against expected values from reference.py, then
dropped: it may take at most CAP_FACTOR times the bytes of the reference's), and rules.py decides
units and points. Expected values, comparisons and the hidden checks (built from each grade's own
seed) stay in this process; the sandbox gets a hidden check as a public probe's name and arguments.
"""
from __future__ import annotations

import functools
import os
import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from . import reference as R
from . import syntax
from .course import PACKAGE
from .diagnosis import Diagnosis
from .inside import frames
from .inside.frames import ErrorKind
from .intake import SubmissionError, find_package, stage, unpack
from .results import GradingOptions, GradingResults
from .rules import OwnForward, Resolution, Verdict, scored
from .sandbox import CheckRequest, ChildError, ChildResult, SandboxError, Session, preflight
from .units import BY_NAME, UNITS, Unit, closure

FUNCTIONS = sorted({u.function for u in UNITS})
MAX_MESSAGE = 2000  # characters of one check's feedback
RETRIED = "not shown: a run with the reference in place"  # what a retry's verdict says (pass or fail only)
CHECKS_PER_CHILD = 32  # quick checks worth starting one more child for (children_for)


class GraderError(Exception):
    """Grading one submission failed on the grader's side: nothing is recorded for it."""


def module_file(module: str) -> str:
    """'captioning/m.py' of a module of the package ('m', or 'classifiers.rnn')."""
    return "%s/%s.py" % (PACKAGE, module.replace(".", "/"))


class SandboxRunner:
    """The checks of one submission, run in its sandbox Session and judged here: rules.Runner."""

    def __init__(self, session: Session, checks: dict[str, Any], options: GradingOptions):
        self.session, self.checks, self.options = session, checks, options
        self.expected = R.Expected(checks)
        self.diagnosis = Diagnosis(checks, self.expected)  # the typical mistakes failing checks match
        self.stubs: dict[str, dict[str, int]] = {}  # syntax.stub_lines of each file read
        self.kept: dict[tuple[str, tuple[str, ...]], ChildResult] = {}  # (title, swaps): a result run ahead

    def judge(self, title: str, result: ChildResult,
              compare: Callable[[dict], tuple[bool, str]] | None = None) -> Verdict:
        """Verdict of one child result, compared here against trusted expected values (or by
        compare(outputs) -> (passed, message))."""
        check = self.checks[title]
        if result.error:
            error = result.error
            return Verdict(False, error.message, result.warnings, error.kind, error.function, error.module)
        assert result.outputs is not None
        try:
            if compare:
                passed, message = compare(result.outputs)
            else:
                passed, message = R.checks_module().judge_outputs(check, result.outputs, R.reference_impl(),
                                                                  self.expected(title), self.session.seed)
        except Exception as exc:  # outputs the trusted side cannot even evaluate
            passed, message = False, "your outputs could not be evaluated: %s: %s" % (type(exc).__name__,
                                                                                     str(exc)[:200])
        if not check.public and not passed:
            message = message.split("\n")[0]  # never show hidden expected values
        return Verdict(passed, message[:MAX_MESSAGE], result.warnings)

    def requests(self, titles: list[str], modes: list[Any]) -> list[CheckRequest]:
        own_gradient = any(mode != "run" for mode in modes)
        requests = []
        for n, (title, mode) in enumerate(zip(titles, modes)):
            unit = self.checks[title].unit
            cap = R.cap_for(title, R.own_gradient_bytes(title) if own_gradient else None)
            requests.append(CheckRequest(n, title, mode, R.limit_for(title, self.options.limits), cap,
                                         BY_NAME[unit].function, [unit] + closure(unit)))
        return requests

    def dispatch(self, titles: list[str], on_result: Callable[[int, ChildResult], None],
                 swaps: tuple[str, ...] = (), modes: list[Any] | None = None) -> None:
        """Run each title in its mode, spread over up to `jobs` children: on_result(n, result) as
        each answer arrives. Modes: "run" (this grade's check), or ["own_gradient", *point] (rule 3's
        calls, on all_checks()'s inputs: the same every grade, and no expected value depends on them).
        The numpy units' checks run first, in children that cannot reach PyTorch, then the network
        visualization units' in children that can."""
        modes = modes or ["run"] * len(titles)
        requests, jobs = self.requests(titles, modes), self.options.jobs
        oracle = R.oracle_sources() if swaps else None
        own_gradient = any(mode != "run" for mode in modes)
        probes = frames.pack({t: (R.all_checks() if own_gradient else self.checks)[t].probe for t in titles
                              if not self.checks[t].public})
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            for autodiff in (False, True):  # one family at a time: no child of one sees the other's files
                family = [r for r in requests if R.checks_module().needs_torch(self.checks[r.title]) == autodiff]
                run = functools.partial(self.session.run, functions=FUNCTIONS, on_result=on_result, probes=probes,
                                        swaps=swaps, reference=oracle, autodiff=autodiff)
                n = self.children_for(family)
                list(pool.map(run, [family[k::n] for k in range(n) if family[k::n]]))

    def children_for(self, family: list[CheckRequest]) -> int:
        """How many children share a family's checks: up to `jobs`, one per CHECKS_PER_CHILD checks,
        a training check counting as that many. Starting a child (Python, numpy, the package, and
        PyTorch for the network visualization's) costs more than a few dozen quick checks take: a
        retry's handful, or the network visualization's sixteen, in two children took twice the
        CPU and no less time."""
        weight = sum(CHECKS_PER_CHILD if BY_NAME[self.checks[r.title].unit].training else 1 for r in family)
        return max(1, min(self.options.jobs, -(-weight // CHECKS_PER_CHILD)))

    def run(self, titles: list[str], swaps: tuple[str, ...] = (), ahead: Sequence[str] = ()) -> dict[str, Verdict]:
        """The titles' verdicts; with swaps, their messages say nothing (student code there read the
        reference's values), their kind and function stay. The checks `ahead` run in the same
        children; their results are kept, unjudged, for a later run with the same swaps."""
        batch = [t for t in dict.fromkeys([*titles, *ahead]) if (t, swaps) not in self.kept]

        def keep(n: int, result: ChildResult) -> None:
            self.kept[batch[n], swaps] = result
        if batch:
            self.dispatch(batch, keep, swaps)
        verdicts = {}
        for title in titles:
            result = self.kept.pop((title, swaps))
            verdict = self.judge(title, result)
            verdicts[title] = replace(verdict, message=RETRIED) if swaps else verdict
            self.diagnosis.observe(title, result, verdicts[title].passed, swaps)
        return verdicts

    def first_pass(self, titles: list[str]) -> dict[str, Verdict]:
        """Every check on the submission's own code: the fast ones with the gate checks last (a gate
        that runs out of time marks no function hung for the fast ones), then the training ones
        (which skip any unit function that hung before)."""
        training = [t for t in titles if BY_NAME[self.checks[t].unit].training]
        fast = sorted((t for t in titles if t not in training), key=lambda t: self.checks[t].gate)  # stable
        verdicts = {}
        for group in (fast, training):
            verdicts.update(self.run(group))
        return verdicts

    def stub_location(self, unit: Unit) -> str:
        """' (captioning/file.py, line N, in f)' of the first `raise NotImplementedError` in the
        unit's own function, read from the staged source token by token (never run, no tree built)."""
        module, qualname = unit.function.split(":")
        rel = module_file(module)
        if rel not in self.stubs:
            try:
                self.stubs[rel] = syntax.stub_lines((self.session.scratch / rel).read_text())
            except (OSError, ValueError):
                self.stubs[rel] = {}
        line = self.stubs[rel].get(qualname)
        return " (%s, line %d, in %s)" % (rel, line, qualname.split(".")[-1]) if line else ""

    def own_forward(self, titles: list[str]) -> dict[str, OwnForward]:
        """Rule 3: one call gives each check's forward outputs and gradients, then one call per moved
        point: nothing in the student's process knows the points before it has answered. Only one
        number of each moved point's answer is kept (memory stays bounded). A public check is judged
        by your own forward's gradients whatever that forward computes, as the notebook judges it; a
        hidden one only when your forward is close to the layer's."""
        C = R.checks_module()
        base: dict[str, ChildResult] = {}

        def keep(n: int, result: ChildResult) -> None:
            base[titles[n]] = result
        self.dispatch(titles, keep, modes=[["own_gradient"]] * len(titles))
        near = {t: self.judge(t, base[t], functools.partial(C.own_forward_distance, reference=R.reference_forward(t)))
                for t in titles}
        judged = [t for t in titles if near[t].passed or (self.checks[t].public and base[t].error is None)]
        entries = [(t, point) for t in judged for point in R.moved_points(t)]
        moved: dict[tuple[str, tuple], float] = {}
        failed: dict[str, ChildResult] = {}

        def project(n: int, result: ChildResult) -> None:
            title, point = entries[n]
            try:
                if result.error is None:
                    moved[title, point] = C.own_forward_projection(R.all_checks()[title], result.outputs,
                                                                   base[title].outputs, R.reference_forward(title))
            except ValueError as exc:
                result = ChildResult(error=ChildError(ErrorKind.OUTPUT, None, str(exc)))
            if result.error:
                failed.setdefault(title, result)
        self.dispatch([t for t, _ in entries], project, modes=[["own_gradient", *point] for _, point in entries])
        answers = {}
        for title in titles:
            if title not in judged:
                answers[title] = OwnForward(near[title], None)
                continue
            at = {point: value for (t, point), value in moved.items() if t == title}
            answers[title] = OwnForward(near[title], self.judge(title, failed.get(title) or base[title],
                                        functools.partial(C.own_gradient_compare, R.all_checks()[title], moved=at)))
        return answers


def sandbox_layers(limits: Any = None) -> tuple[str, ...]:
    """The isolation layers in force, once the sandbox has been seen to work (else SandboxError)."""
    return tuple(preflight(limits).layers)


def readable_by_the_sandbox(scratch: Path) -> None:
    """Folders 0755 and files 0644 under scratch (bound read-only into the sandbox), whatever the
    modes of the files they were copied from: the sandbox's throwaway uid must read them."""
    for path in [scratch, *scratch.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def grade(submission: str | Path, options: GradingOptions | None = None) -> GradingResults:
    """Grade a submission folder or zip: a CheckResult per check of the wanted units.

    The units these depend on are checked too (to tell root causes), but not reported. Raises
    SubmissionError when there is nothing to grade, SandboxError when the sandbox does not work
    (no grade may come from a broken sandbox)."""
    options = options or GradingOptions()
    started = time.monotonic()
    layers = sandbox_layers(options.limits)
    wanted = [u.name for u in UNITS if options.units is None or u.name in options.units]
    needed = set(wanted).union(*(closure(u) for u in wanted))
    titles = [t for t, c in R.all_checks().items() if c.unit in needed and (c.public or not options.public_only)]
    with tempfile.TemporaryDirectory(prefix="grade-%d-" % os.getpid()) as tmp:
        Path(tmp, "unpacked").mkdir()
        folder = find_package(unpack(submission, Path(tmp, "unpacked")))
        scratch = Path(tmp, "scratch")
        scratch.mkdir()
        refused = stage(folder, scratch)
        readable_by_the_sandbox(scratch)
        # A fresh seed for the hidden and the seeded (training) checks: what one grade reveals of
        # them (its inputs, its fixture) is of no use to the next.
        session = Session(scratch, options.limits, R.child_sources(), secrets.randbelow(1 << 30))
        try:
            checks = R.checks_for(session.seed)
            runner = SandboxRunner(session, checks, options)
            by_unit: dict[str, list[str]] = {}
            for title in titles:
                by_unit.setdefault(checks[title].unit, []).append(title)
            resolution = Resolution([u for u in UNITS if u.name in by_unit], by_unit, runner.first_pass(titles),
                                    checks, runner)
            states = resolution.resolve()
        finally:
            session.close()
    hints = runner.diagnosis.hints(states, resolution.verdicts, by_unit)
    results = scored(wanted, by_unit, resolution.verdicts, checks, module_file, hints)
    return GradingResults(results, refused=refused).timed(time.monotonic() - started, layers)


def grade_student(path: str | Path, options: GradingOptions | None = None) -> GradingResults:
    """The results of one submission of a class, for batch and cluster.

    A submission that cannot be graded gets NOT_GRADABLE results with the reason. A failure of the
    grader itself is never written down as the student's grade: SandboxError stops the batch,
    anything else raises GraderError for this student only (run again to grade them)."""
    started = time.monotonic()
    try:
        return grade(path, options)
    except SubmissionError as exc:
        return GradingResults.not_gradable(str(exc), time.monotonic() - started)
    except SandboxError:
        raise
    except Exception as exc:
        raise GraderError("%s: %s" % (type(exc).__name__, str(exc)[:200])) from exc
