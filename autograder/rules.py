"""The grading rules (README, "How grading works"), as pure code over a runner.

Given each check's first verdict (on the submission's own code) and a Runner that can run checks
again (with units swapped for the reference, or against the student's own forward pass), resolve()
decides every unit's State and every check's final Verdict, and scored() turns them into points.
Nothing here touches a sandbox, a file or the reference: tests/test_rules.py drives it with canned
verdicts.

1. A unit whose own function raises NotImplementedError gets 0, "not implemented yet".
2. A check that fails is run again with the failing or unwritten units it depends on swapped for
   the reference (a forward swapped in brings its backward partner, for their shared cache layout);
   feedback names root causes only. A unit grading the same function as an earlier wrong unit
   (CaptioningRNN.loss or sample, rnn and lstm), failing a check of the same name and no public
   check the earlier one passes, has the same bug: it is charged once, on the earlier unit.
3. A backward unit that fails with the reference forward (cache layouts differ) is checked against
   numerical gradients of the student's own forward: on a public check always (as the notebook
   does), on a hidden one when that forward is close to the layer's (the runner's business).
4. A training unit is retried with failing layers swapped, never with its loss swapped: it earns its
   points when training reaches its target, whatever the loss unit's verdict.
5. A unit function that ran past its limit is not waited for again (the runner's business): the
   unit "did not finish in time".
6. A unit's public checks earn points only with at least one of its hidden checks.
7. A unit earns nothing when its gate check fails: said "too slow" only when it ran out of time.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from .inside.frames import ErrorKind
from .results import CheckResult
from .units import BY_NAME, Unit, closure

LATE = frozenset({ErrorKind.TIMEOUT, ErrorKind.SKIPPED})
WITHHELD = "this check itself passes"  # how a passing check whose points rules 6 and 7 withhold ends


class State(Enum):
    """A unit's state once graded, with the words feedback says it in ("... which is wrong")."""
    PASS = "passes"
    NOT_WRITTEN = "is not written yet"
    TIMED_OUT = "did not finish in time"
    WRONG = "is wrong"
    NEEDS_LOSS = "needs a working loss"


@dataclass(frozen=True)
class Verdict:
    """One check's outcome: passed or not, why, the child's warnings, and for an error its kind,
    the unit function it arose in ('module:qualname') and the module that did not import."""
    passed: bool
    message: str
    warnings: tuple[str, ...] = ()
    kind: ErrorKind | None = None
    function: str | None = None
    module: str | None = None


@dataclass(frozen=True)
class OwnForward:
    """Rule 3's answer for one backward check: whether the student's forward is close to the
    layer's there (near), and the comparison with its numerical gradients (None when not near)."""
    near: Verdict
    gradients: Verdict | None


class CheckInfo(Protocol):
    """What the rules read of a check (checks.Check has it)."""
    title: str
    unit: str
    public: bool
    gate: bool
    backward_of: object


class Runner(Protocol):
    def run(self, titles: list[str], swaps: tuple[str, ...], ahead: Sequence[str] = ()) -> dict[str, Verdict]:
        """The titles' verdicts, run again with these unit functions swapped for the reference; the
        checks `ahead` may be asked for later with the same swaps: they may run now, with these."""

    def own_forward(self, titles: list[str]) -> dict[str, OwnForward]:
        """Rule 3 for backward checks (those with backward_of) among titles."""

    def stub_location(self, unit: Unit) -> str:
        """' (file, line N, in f)' of the unit's `raise NotImplementedError`, or ''."""


def not_written(unit: Unit, runner: Runner) -> Verdict:
    """A check of a unit whose own function raises NotImplementedError. The place is read from the
    staged source: what a retry itself says never reaches the student."""
    return Verdict(False, "not implemented yet: NotImplementedError" + runner.stub_location(unit))


def why(roots: Iterable[str], states: Mapping[str, State]) -> str:
    """What the root causes of a retry are, as its feedback names them."""
    return "; ".join("%s %s" % (d, "fails its own tests" if states[d] is State.WRONG else states[d].value)
                     for d in roots)


class Resolution:
    """The units of one submission resolved in dependency order (UNITS order)."""

    def __init__(self, units: list[Unit], by_unit: Mapping[str, list[str]], verdicts: Mapping[str, Verdict],
                 checks: Mapping[str, CheckInfo], runner: Runner):
        self.units, self.by_unit, self.checks, self.runner = units, by_unit, checks, runner
        self.verdicts = dict(verdicts)
        self.states: dict[str, State] = {}

    def resolve(self) -> dict[str, State]:
        for unit in self.units:
            self.states[unit.name] = self.state(unit)
            if self.states[unit.name] is State.WRONG:
                self.charged_once(unit)
            if unit.training and self.states[unit.name] is not State.PASS:
                self.needs_loss(unit)
        return self.states

    def failing_names(self, unit: str, public: bool = False) -> set[str]:
        """The names of the checks of unit that fail (the public ones only: their inputs are fixed)."""
        return {self.checks[t].title.split(": ", 1)[1] for t in self.by_unit[unit]
                if not self.verdicts[t].passed and (self.checks[t].public or not public)}

    def charged_once(self, unit: Unit) -> None:
        """Rule 2: an earlier wrong unit grading the same function, failing a check of the same name
        and every public check this one fails, has the bug: this unit keeps its points, when it passes
        a public check of its own and its failures are wrong values, not errors (a method returning
        zeros or raising for both cells earns the second unit nothing). Public checks only: hidden
        inputs are drawn per grade, and one may pass by chance for one cell type only."""
        own = {t: self.verdicts[t] for t in self.by_unit[unit.name]}
        if (not any(v.passed for t, v in own.items() if self.checks[t].public)
                or any(not v.passed and v.kind is not None for v in own.values())):
            return  # no public check passed, or an error: nothing says this cell type's own code is right
        earlier = next((u.name for u in self.units[:self.units.index(unit)] if u.function == unit.function
                        and not (u.training or unit.training) and self.states[u.name] is State.WRONG
                        and self.failing_names(unit.name, public=True) <= self.failing_names(u.name, public=True)
                        and self.failing_names(unit.name) & self.failing_names(u.name)), None)
        if earlier is None:
            return
        for title in self.by_unit[unit.name]:
            first = self.verdicts[title]
            if not first.passed:
                self.verdicts[title] = Verdict(True, "the same failure as %s (%s): one bug in %s, charged there once"
                                               % (earlier, first.message, unit.function.split(":")[1]), first.warnings)
        self.states[unit.name] = State.PASS

    def failing(self, unit: Unit) -> tuple[list[str], set[ErrorKind | None]]:
        """The unit's failing checks, and the kinds of error its own function raised in them."""
        failing = [t for t in self.by_unit[unit.name] if not self.verdicts[t].passed]
        return failing, {self.verdicts[t].kind for t in failing if self.verdicts[t].function == unit.function}

    def state(self, unit: Unit) -> State:
        failing, own = self.failing(unit)
        if not failing:
            return State.PASS
        if ErrorKind.NOT_IMPLEMENTED in own:
            for t in self.by_unit[unit.name]:
                if self.verdicts[t].passed:
                    self.verdicts[t] = not_written(unit, self.runner)
            return State.NOT_WRITTEN
        if own & LATE:
            return State.TIMED_OUT
        return self.retry(unit, failing)

    def needs_loss(self, unit: Unit) -> None:
        """Rule 4: training that fails with a loss that does not pass says so."""
        loss = unit.depends[0]
        state = self.states.get(loss, State.PASS)
        if state is not State.PASS:
            for t in self.by_unit[unit.name]:
                first = self.verdicts[t]
                if not first.passed:
                    self.verdicts[t] = replace(first, message="%s (training uses your own %s, which %s: see its test)"
                                               % (first.message, loss, state.value))
            self.states[unit.name] = State.NEEDS_LOSS

    def swaps(self, unit: Unit, roots: list[str]) -> tuple[str, ...]:
        """The unit functions swapped for the reference: each root cause, and its partner (a forward
        and its backward share a cache layout) unless that partner is the unit itself."""
        functions = set()
        for dep in roots:
            functions.add(BY_NAME[dep].function)
            partner = BY_NAME[dep].partner
            if partner and partner != unit.name:
                functions.add(BY_NAME[partner].function)
        return tuple(sorted(functions))

    def roots(self, unit: Unit) -> list[str]:
        """The units the unit calls that do not pass (so far): its failures' possible root causes."""
        roots = [d for d in closure(unit.name) if self.states.get(d, State.PASS) is not State.PASS]
        if unit.training:
            roots = [d for d in roots if d not in unit.depends]  # the loss is the unit's own code
        return roots

    def ahead(self, unit: Unit, swaps: tuple[str, ...]) -> list[str]:
        """The failing checks of the later quick units whose retry will ask for the same swaps if
        the units resolved in between pass (a bug in a layer fails every unit above it): run with
        this retry, in the same sandboxed processes, rather than one process each."""
        titles = []
        for later in self.units[self.units.index(unit) + 1:]:
            failing, own = self.failing(later)
            if (failing and not later.training and not own & (LATE | {ErrorKind.NOT_IMPLEMENTED})
                    and self.swaps(later, self.roots(later)) == swaps):
                titles += failing
        return titles

    def retry(self, unit: Unit, failing: list[str]) -> State:
        """Rule 2: run the failing checks again with the unit's root-cause dependencies swapped."""
        roots = self.roots(unit)
        swaps = self.swaps(unit, roots)
        if not swaps:
            return State.WRONG
        because = why(roots, self.states)
        retried = self.runner.run(failing, swaps, self.ahead(unit, swaps))
        own = [v for v in retried.values() if v.function == unit.function]
        if any(v.kind is ErrorKind.NOT_IMPLEMENTED for v in own):
            for title in failing:
                self.verdicts[title] = not_written(unit, self.runner)
            return State.NOT_WRITTEN
        self.own_forward(unit, self.take_retried(unit, roots, retried, because), because)
        if any(v.kind in LATE for v in own):
            return State.TIMED_OUT
        return State.PASS if all(self.verdicts[t].passed for t in failing) else State.WRONG

    def take_retried(self, unit: Unit, roots: list[str], retried: Mapping[str, Verdict], because: str) -> list[str]:
        """Each retried check's verdict: right with the reference in place, or still wrong (what a
        retry says is never shown: student code there could call the oracle); the titles left for
        rule 3 (a backward pass whose own forward computes something wrong)."""
        fallback = []
        for title, verdict in retried.items():
            first = self.verdicts[title]
            if verdict.passed:
                self.verdicts[title] = Verdict(True, "right with the reference %s in place of yours (%s)"
                                               % (", ".join(roots), because), first.warnings)
            elif unit.is_backward and self.states.get(unit.partner) is State.WRONG and self.ran(unit.partner):
                fallback.append(title)
            else:
                self.verdicts[title] = replace(first, passed=False, message="%s; it fails with the reference %s too"
                                               % (first.message, ", ".join(roots)))
        return fallback

    def ran(self, unit: str) -> bool:
        """Whether every check of unit got numeric outputs to compare (wrong ones, or right ones)
        rather than an error: only a forward that computes something can be differentiated."""
        return all(self.verdicts[t].kind is None for t in self.by_unit[unit])

    def own_forward(self, unit: Unit, titles: list[str], because: str) -> None:
        """Rule 3: backward checks the reference forward's cache does not fit, judged against
        numerical gradients of the student's own forward where it is close to the layer's."""
        if not titles:
            return
        answers = self.runner.own_forward([t for t in titles if self.checks[t].backward_of is not None])
        for title in titles:
            first, answer = self.verdicts[title], answers.get(title)
            if answer is None:
                message, passed = "%s (%s)" % (first.message, because), False
            elif answer.gradients is None:
                message, passed = "%s; %s (%s)" % (first.message, answer.near.message, because), False
            elif answer.gradients.passed:
                message, passed = ("agrees with numerical gradients of your own %s (%s): %s"
                                   % (unit.partner, because, answer.gradients.message)), True
            else:
                message, passed = ("%s; it does not match numerical gradients of your own %s either (%s)"
                                   % (first.message, unit.partner, because)), False
            self.verdicts[title] = Verdict(passed, message, first.warnings)


def withheld(titles: list[str], verdicts: Mapping[str, Verdict], checks: Mapping[str, CheckInfo]) -> str | None:
    """Why the passing checks of a unit earn nothing, or None: its gate check fails (rule 7), or
    all its hidden checks fail (rule 6: the public checks' answers are published)."""
    unit_checks = [checks[t] for t in titles]
    gates = [verdicts[c.title] for c in unit_checks if c.gate and not verdicts[c.title].passed]
    if any(v.kind in LATE for v in gates):
        return ("the check on large inputs ran out of time, and this unit earns points only with it: a backward "
                "pass must be analytic (numerical gradients take two forward passes per input element)")
    if gates:
        return "the check on large inputs fails, and this unit earns points only with it"
    hidden = [c for c in unit_checks if not c.public]
    if hidden and not any(verdicts[c.title].passed for c in hidden):
        return ("every hidden check of this unit fails, and the public checks' answers are published: they "
                "count only with a hidden one")
    return None


def split_points(points: float, count: int) -> list[float]:
    """count per-test shares, rounded to 4 decimals, adding up exactly to points."""
    share = round(points / count, 4)
    return [share] * (count - 1) + [round(points - share * (count - 1), 4)]


class HintInfo(Protocol):
    """What scored() reads of a unit's diagnosis (diagnosis.Hint has it)."""
    @property
    def title(self) -> str: ...  # the test that carries it

    @property
    def line(self) -> str: ...  # what the student reads

    def as_data(self) -> dict[str, Any]: ...


def scored(wanted: list[str], by_unit: Mapping[str, list[str]], verdicts: Mapping[str, Verdict],
           checks: Mapping[str, CheckInfo], module_file: Callable[[str], str],
           hints: Mapping[str, HintInfo] | None = None) -> tuple[CheckResult, ...]:
    """The CheckResult of every check of the wanted units: each unit's points split over its
    checks, withheld (rules 6 and 7) where they must be; a module that does not import is
    explained once, on the first test it fails (module_file names its file); a unit's hint (rule
    8), on the test that carries it."""
    results: list[CheckResult] = []
    told: dict[str, str] = {}  # module -> the test that says why it does not import
    for name in wanted:
        titles = by_unit.get(name, [])
        reason = withheld(titles, verdicts, checks)
        for title, share in zip(titles, split_points(BY_NAME[name].points, len(titles))):
            verdict = verdicts[title]
            if reason and verdict.passed:
                verdict = Verdict(False, "%s; %s: %s" % (reason, WITHHELD, verdict.message))
            if verdict.module and verdict.module in told:
                verdict = Verdict(False, "could not import %s (why: see the test %r)"
                                  % (module_file(verdict.module), told[verdict.module]))
            elif verdict.module:
                told[verdict.module] = title
            output = ("PASS: " if verdict.passed else "FAIL: ") + verdict.message
            output += "".join("\nwarning: " + w for w in verdict.warnings)
            hint = (hints or {}).get(name)
            hint = hint if hint is not None and hint.title == title else None
            output += "\n" + hint.line if hint else ""
            results.append(CheckResult(name, title, share if verdict.passed else 0.0, share, output,
                                       checks[title].public, hint.as_data() if hint else None))
    return tuple(results)
