"""Grade one submission: run every check in the sandbox, compare here, give each unit its points.

The rules (README, "How grading works"):
1. Every unit is graded on its own code. A check that fails is run again with the failing or
   unwritten units it depends on swapped for the reference (served by the oracle process); a
   forward unit swapped in brings its backward partner along, for their shared cache layout. A
   unit whose own function raises NotImplementedError gets 0, "not implemented yet".
2. Feedback names root causes only: the units that still fail on their own code.
3. A backward unit that fails with the reference forward (cache layouts differ) is checked
   against centred differences of the student's own forward on the same inputs, when that forward
   is close to the reference's there: the grader asks for each moved point in a call of its own.
4. A training unit's own code is the model's loss as written: it is retried with failing layers
   swapped, never with the loss swapped, and earns points only when the loss unit passes and
   the trained parameters have the reference's shapes.
5. A unit function that ran past its limit is never waited for again: later checks that call it
   fail at once (then are retried with it swapped). Limits come from the reference's own time.
6. A unit earns nothing when its gate check fails: large inputs, where a backward pass by
   numerical gradients cannot finish in the time an analytic one takes (run after the fast checks).

Expected values, comparisons and the hidden checks (built from each grade's own seed) stay in
this process; the submission runs only in the sandbox, which gets a hidden check as a public
probe's name and arguments. Each answer is judged as it arrives and dropped; it may take at most
CAP_FACTOR times the bytes of the reference's.
"""
import ast
import functools
import importlib.util
import os
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .course import PACKAGE, REFERENCE_PACKAGE
from .diagnosis import Diagnosis  # issue #22 hook
from .hidden import hidden_checks
from .inside import frames
from .intake import find_package, stage, unpack
from .sandbox import ChildResult, Limits, SandboxError, Session, preflight
from .units import BY_NAME, UNITS, closure

FUNCTIONS = sorted({u.function for u in UNITS})
MAX_MESSAGE = 2000  # characters of one check's feedback
CAP_FACTOR, MIN_CAP = 4, 64 * 1024  # an answer's bytes: at most CAP_FACTOR x the reference's, or MIN_CAP
TRAINED_CAP = 4 << 20               # a training check's answer (the trained parameters, < 1 MB as float64)


@functools.lru_cache(maxsize=None)
def reference():
    """The reference package from source/, imported under its own name (once, when first needed)."""
    name = "reference_" + PACKAGE
    spec = importlib.util.spec_from_file_location(name, REFERENCE_PACKAGE / "__init__.py",
                                                  submodule_search_locations=[str(REFERENCE_PACKAGE)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=None)
def checks_module():
    return importlib.import_module(reference().__name__ + ".checks")


@functools.lru_cache(maxsize=None)
def reference_impl():
    return checks_module().load_impl(reference())


def checks_for(seed):
    """{title: Check}: the public checks, then the hidden ones built from seed, in that order (the
    titles, units and shapes are the same for every seed)."""
    C = checks_module()
    checks = C.PUBLIC_CHECKS + hidden_checks(C, seed)
    by_title = {c.title: c for c in checks}
    assert len(by_title) == len(checks), "two checks share a title"
    return by_title


@functools.lru_cache(maxsize=None)
def all_checks():
    """checks_for(0): what every seed's checks have in common (titles, units, limits, sizes)."""
    return checks_for(0)


def child_sources():
    """The trusted source texts every child needs: the public checks (no expected values, no
    reference code, no hidden checks)."""
    return {name: (REFERENCE_PACKAGE / (name + ".py")).read_text() for name in ("gradient_check", "checks")}


def child_probes(checks, titles):
    """{title: probe} of the hidden checks among titles, packed as a frame for the child's request."""
    return frames.pack({t: checks[t].probe for t in titles if not checks[t].public})


def oracle_sources():
    """The reference layers the oracle serves swapped functions from (each imports numpy only)."""
    names = ("layers.py", "rnn_layers.py", "transformer_layers.py")
    return {name: (REFERENCE_PACKAGE / name).read_text() for name in names}


@dataclass
class Verdict:
    """One check's outcome: passed or not, why, and the child's warnings (sandbox.child_warnings)."""
    passed: bool
    message: str
    warnings: list = field(default_factory=list)
    kind: str = None       # the error kind when the submission raised or stopped
    function: str = None   # the unit function ('module:qualname') the error arose in
    module: str = None     # the module of the package that did not import, when that is why


@dataclass
class TestResult:
    """One graded test, as every front end reports it."""
    unit: str
    name: str
    score: float
    max_score: float
    output: str
    public: bool
    diagnosis: dict = None  # issue #22 hook: {"mistakes": [ids], "hint": text} on the test carrying a hint


# ---------------------------------------------------------------- time limits and sizes

def nbytes(outputs):
    return sum(np.asarray(v).nbytes for v in outputs.values())


@functools.lru_cache(maxsize=None)
def reference_profile(title):
    """(seconds, bytes of outputs) of a check's run on the reference, measured once in this process."""
    started = time.perf_counter()
    outputs = all_checks()[title].run(reference_impl())
    return time.perf_counter() - started, nbytes(outputs)


def limit_for(title, limits):
    check = all_checks()[title]
    if BY_NAME[check.unit].training:
        return limits.train_seconds
    least = limits.gate_seconds if check.gate else limits.check_seconds
    return max(least, limits.check_factor * reference_profile(title)[0])


def cap_for(title, reference_bytes=None):
    """The most bytes a check's answer may take: CAP_FACTOR x the reference's (reference_bytes, by
    default its run's), at least MIN_CAP; TRAINED_CAP for a training check (not run here)."""
    if BY_NAME[all_checks()[title].unit].training:
        return TRAINED_CAP
    return max(MIN_CAP, CAP_FACTOR * (reference_profile(title)[1] if reference_bytes is None else reference_bytes))


# ---------------------------------------------------------------- judging

_public_expected = {}  # title: the same for every grade


@functools.lru_cache(maxsize=None)
def reference_forward(title):
    """The reference forward's outputs on the (float64) inputs of a backward check."""
    C = checks_module()
    layer, inputs, _ = all_checks()[title].backward_of
    return C.forward_outputs(layer, reference_impl(), {k: v.astype("float64") for k, v in inputs.items()})


@functools.lru_cache(maxsize=None)
def own_gradient_bytes(title):
    """Bytes of the reference's answer to the own-gradient probe of a backward check (forward
    outputs and gradients): what the own-forward fallback's answers are capped by."""
    return nbytes(checks_module().own_gradient_probe(*all_checks()[title].backward_of)(reference_impl()))


def moved_points(title, per_input=24):
    """The points (name, index, sign) at which the own-forward check moves a backward check's
    inputs: every element of an input of up to per_input elements, else per_input chosen at random."""
    layer, inputs, _ = all_checks()[title].backward_of
    pick = secrets.SystemRandom().sample
    return [(name, index, sign) for name in checks_module().grad_names(layer, inputs)
            for index in sorted(pick(range(inputs[name].size), min(per_input, inputs[name].size)))
            for sign in (1, -1)]


def short(function):
    return function.split(":")[1]


def compile_error(scratch, module):
    """'could not import captioning/m.py: SyntaxError: ... (captioning/m.py, line L, column C)' of a
    staged module that does not compile (parsed here, never run), or None."""
    rel = "%s/%s.py" % (PACKAGE, module.replace(".", "/"))
    try:
        ast.parse((scratch / rel).read_bytes(), rel)
    except SyntaxError as exc:
        return "could not import %s: %s: %s (%s, line %s, column %s)" % (rel, type(exc).__name__, exc.msg, rel,
                                                                         exc.lineno, exc.offset)
    except (OSError, ValueError):
        pass
    return None


def stub_location(scratch, unit):
    """' (captioning/file.py, line N, in f)' of the first `raise NotImplementedError` in the unit's
    own function, found in the staged source (parsed here, never run), or ''."""
    module, qualname = unit.function.split(":")
    rel = "%s/%s.py" % (PACKAGE, module.replace(".", "/"))
    try:
        node = ast.parse((scratch / rel).read_text())
        for name in qualname.split("."):
            node = next(n for n in node.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name)
        raised = next(n for n in ast.walk(node) if isinstance(n, ast.Raise) and n.exc is not None
                      and "NotImplementedError" in ast.unparse(n.exc))
    except Exception:  # unparsable, or no such function or raise: say less
        return ""
    return " (%s, line %d, in %s)" % (rel, raised.lineno, name)


class Grading:
    """The checks of one submission, run in its sandbox Session and resolved unit by unit."""

    def __init__(self, session, checks, titles, limits, jobs):
        self.session, self.checks, self.limits, self.jobs = session, checks, limits, jobs
        self.titles = titles
        self.by_unit = {}
        for title in titles:
            self.by_unit.setdefault(checks[title].unit, []).append(title)
        self.verdicts, self.expected_cache = {}, {}
        self.diagnosis = Diagnosis(checks, self.expected)  # issue #22 hook

    def expected(self, title):
        """A check's expected values, computed with the reference once per grade (hidden checks,
        built from the grade's seed) or once per process (public ones)."""
        check = self.checks[title]
        cache = _public_expected if check.public else self.expected_cache
        if title not in cache:
            cache[title] = checks_module().expected_values(check, reference_impl())
        return cache[title]

    def judge(self, title, result, compare=None):
        """Verdict of one child result, compared here against trusted expected values (or by
        compare(outputs) -> (passed, message))."""
        C, check = checks_module(), self.checks[title]
        if result.error:
            module = result.error.get("module")
            message = module and compile_error(self.session.scratch, module) or result.error["message"]
            return Verdict(False, message, result.warnings, result.error["kind"], result.error["function"], module)
        try:
            if compare:
                passed, message = compare(result.outputs)
            else:
                passed, message = C.judge_outputs(check, result.outputs, reference_impl(), self.expected(title),
                                                  self.session.seed)
        except Exception as exc:  # outputs the trusted side cannot even evaluate
            passed, message = False, "your outputs could not be evaluated: %s: %s" % (type(exc).__name__,
                                                                                     str(exc)[:200])
        if not check.public and not passed:
            message = message.split("\n")[0]  # never show hidden expected values
        return Verdict(passed, message[:MAX_MESSAGE], result.warnings)

    def run(self, titles, swaps=(), modes=None, collect=None):
        """{title: Verdict} of each title run in its mode, spread over up to `jobs` children, each
        answer judged as it arrives (or handed to collect(n, result) instead). Modes: "run" (this
        grade's check), or ["own_gradient", *point] (the own-forward fallback's calls, on
        all_checks()'s inputs: the same every grade, and no expected value depends on them)."""
        modes = modes or ["run"] * len(titles)
        own_gradient = any(mode != "run" for mode in modes)
        entries = []
        for n, (title, mode) in enumerate(zip(titles, modes)):
            unit = self.checks[title].unit
            cap = cap_for(title, own_gradient_bytes(title) if own_gradient else None)
            entries.append((n, title, mode, limit_for(title, self.limits), cap, BY_NAME[unit].function,
                            [unit] + closure(unit)))
        groups = [entries[k::self.jobs] for k in range(self.jobs) if entries[k::self.jobs]]
        reference = oracle_sources() if swaps else None
        probes = child_probes(all_checks() if own_gradient else self.checks, titles)
        verdicts = {}

        def judged(n, result):
            verdicts[titles[n]] = self.judge(titles[n], result)
            self.diagnosis.observe(titles[n], result, verdicts[titles[n]].passed, swaps)  # issue #22 hook
        with ThreadPoolExecutor(max(1, len(groups))) as pool:
            list(pool.map(lambda g: self.session.run(g, FUNCTIONS, collect or judged, probes, swaps, reference),
                          groups))
        return verdicts

    def results(self, titles, modes):
        """[ChildResult] of each title run in its mode, kept (the own-forward fallback compares them)."""
        results = [None] * len(titles)

        def keep(n, result):
            results[n] = result
        self.run(titles, modes=modes, collect=keep)
        return results

    def first_pass(self):
        """Every check on the submission's own code: the fast ones with the gate checks last (a gate
        that runs out of time marks no function hung for the fast ones), then the training ones
        (which skip any unit function that hung before)."""
        training = [t for t in self.titles if BY_NAME[self.checks[t].unit].training]
        fast = sorted((t for t in self.titles if t not in training), key=lambda t: self.checks[t].gate)  # stable
        for titles in (fast, training):
            self.verdicts.update(self.run(titles))

    def resolve(self):
        """Final verdicts, unit by unit in dependency order: {unit: 'pass' | reason it fails}."""
        state = {}
        for unit in [u for u in UNITS if u.name in self.by_unit]:
            titles = self.by_unit[unit.name]
            failing = [t for t in titles if not self.verdicts[t].passed]
            own = [self.verdicts[t] for t in failing if self.verdicts[t].function == unit.function]
            if not failing:
                state[unit.name] = "pass"
            elif any(v.kind == "not_implemented" for v in own):
                state[unit.name] = "is not written yet"
                for t in titles:
                    self.verdicts[t] = self.not_written(unit) if self.verdicts[t].passed else self.verdicts[t]
            elif any(v.kind in ("timeout", "skipped") for v in own):
                state[unit.name] = "did not finish in time"
            else:
                state[unit.name] = self.retry(unit, failing, state)
            if unit.training and state[unit.name] == "pass":
                loss = unit.depends[0]
                if state.get(loss, "pass") != "pass":
                    for t in titles:
                        self.verdicts[t] = Verdict(False, "training is graded with your own %s, which %s "
                                                   "(see its test)" % (loss, state[loss]))
                    state[unit.name] = "needs a working " + loss
        return state

    def retry(self, unit, failing, state):
        """Run the failing checks again with the unit's root-cause dependencies swapped."""
        roots = [d for d in closure(unit.name) if state.get(d, "pass") != "pass"]
        if unit.training:
            roots = [d for d in roots if d not in unit.depends]  # the loss is the unit's own code
        swaps = set()
        for dep in roots:
            swaps.add(BY_NAME[dep].function)
            partner = BY_NAME[dep].partner
            if partner and partner != unit.name:
                swaps.add(BY_NAME[partner].function)
        if not swaps:
            return "is wrong"
        why = "; ".join("%s %s" % (d, "fails its own tests" if state[d] == "is wrong" else state[d]) for d in roots)
        retried = self.run(failing, tuple(sorted(swaps)))
        own = [v for v in retried.values() if v.function == unit.function]
        if any(v.kind == "not_implemented" for v in own):
            for title in failing:
                self.verdicts[title] = self.not_written(unit)
            return "is not written yet"
        own_forward = []
        for title, verdict in retried.items():
            if verdict.passed:
                self.verdicts[title] = Verdict(True, "right with the reference %s in place of yours (%s)"
                                               % (", ".join(roots), why), self.verdicts[title].warnings)
            elif unit.is_backward and state.get(unit.partner) == "is wrong" and self.ran(unit.partner):
                own_forward.append(title)
            else:  # what a retry says is never shown: student code there could call the oracle
                first = self.verdicts[title]
                self.verdicts[title] = Verdict(False, "%s; it fails with the reference %s too"
                                               % (first.message, ", ".join(roots)), first.warnings,
                                               first.kind, first.function, first.module)
        self.own_forward_fallback(unit, own_forward, why)
        if any(v.kind in ("timeout", "skipped") for v in own):
            return "did not finish in time"
        return "pass" if all(self.verdicts[t].passed for t in failing) else "is wrong"

    def not_written(self, unit):
        """The verdict of a check of a unit whose own function raises NotImplementedError. The
        place is read from the staged source: what a retry itself says never reaches the student."""
        return Verdict(False, "not implemented yet: NotImplementedError"
                       + stub_location(self.session.scratch, unit))

    def ran(self, unit):
        """Whether every check of unit got numeric outputs to compare (wrong ones, or right ones)
        rather than an error: only a forward that computes something can be differentiated."""
        return all(self.verdicts[t].kind is None for t in self.by_unit[unit])

    def own_forward_fallback(self, unit, titles, why):
        """Backward passes the reference forward's cache does not fit: each checked against centred
        differences of the student's own forward, when that forward is close to the reference's on
        the check's inputs. One call gives the forward outputs and gradients, then one call per moved
        point: nothing in the student's process knows the points before it has answered."""
        C = checks_module()
        for title in [t for t in titles if all_checks()[t].backward_of is None]:
            first = self.verdicts[title]
            self.verdicts[title] = Verdict(False, "%s (%s)" % (first.message, why), first.warnings)
        titles = [t for t in titles if all_checks()[t].backward_of]
        bases = dict(zip(titles, self.results(titles, [["own_gradient"]] * len(titles))))
        near = {t: self.judge(t, bases[t], functools.partial(C.own_forward_distance, reference=reference_forward(t)))
                for t in titles}
        entries = [(t, point) for t in titles if near[t].passed for point in moved_points(t)]
        moved, failed = {}, {}

        def project(n, result):
            """Keep one number of a moved point's answer (memory stays bounded), or its error."""
            title, point = entries[n]
            try:
                if result.error is None:
                    moved[title, point] = C.own_forward_projection(all_checks()[title], result.outputs,
                                                                   bases[title].outputs, reference_forward(title))
            except ValueError as exc:
                result = ChildResult(error={"kind": "output", "function": None, "message": str(exc)})
            if result.error:
                failed.setdefault(title, result)
        self.run([t for t, _ in entries], modes=[["own_gradient", *point] for _, point in entries], collect=project)
        for title in titles:
            first = self.verdicts[title]
            if not near[title].passed:
                self.verdicts[title] = Verdict(False, "%s; %s (%s)" % (first.message, near[title].message, why),
                                               first.warnings)
                continue
            at = {point: value for (t, point), value in moved.items() if t == title}
            verdict = self.judge(title, failed.get(title) or bases[title], functools.partial(
                C.own_gradient_compare, all_checks()[title], moved=at))
            if verdict.passed:
                self.verdicts[title] = Verdict(True, "agrees with numerical gradients of your own %s (%s): %s"
                                               % (unit.partner, why, verdict.message), first.warnings)
            else:
                self.verdicts[title] = Verdict(False, "%s; it does not match numerical gradients of your own %s "
                                               "either (%s)" % (first.message, unit.partner, why), first.warnings)


def withheld(titles, verdicts):
    """Why the passing checks of a unit earn nothing, or None: its gate check fails (a backward pass
    must be analytic), or all its hidden checks fail (the public checks' answers are published)."""
    checks = [all_checks()[t] for t in titles]
    if any(c.gate and not verdicts[c.title].passed for c in checks):
        return ("the check on large inputs fails, and this unit earns points only with it: a backward pass "
                "must be analytic (numerical gradients take two forward passes per input element)")
    hidden = [c for c in checks if not c.public]
    if hidden and not any(verdicts[c.title].passed for c in hidden):
        return ("every hidden check of this unit fails, and the public checks' answers are published: they "
                "count only with a hidden one")
    return None


def split_points(points, count):
    """count per-test shares, rounded to 4 decimals, adding up exactly to points."""
    share = round(points / count, 4)
    return [share] * (count - 1) + [round(points - share * (count - 1), 4)]


def sandbox_layers(limits=None):
    """The isolation layers in force, once the sandbox has been seen to work (else SandboxError)."""
    return preflight(limits).layers


def readable_by_the_sandbox(scratch):
    """Folders 0755 and files 0644 under scratch (bound read-only into the sandbox), whatever the
    modes of the files they were copied from: the sandbox's throwaway uid must read them."""
    for path in [scratch, *scratch.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def grade(submission, public_only=False, units=None, limits=None, jobs=2):
    """Grade a submission folder or zip: a list of TestResult, one per check of the wanted units.

    The units these depend on are checked too (to tell root causes), but not reported. Raises
    SubmissionError when there is nothing to grade, SandboxError when the sandbox does not work
    (no grade may come from a broken sandbox)."""
    limits = limits or Limits()
    sandbox_layers(limits)
    wanted = [u.name for u in UNITS if units is None or u.name in units]
    needed = set(wanted).union(*(closure(u) for u in wanted))
    titles = [t for t, c in all_checks().items() if c.unit in needed and (c.public or not public_only)]
    with tempfile.TemporaryDirectory(prefix="grade-%d-" % os.getpid()) as tmp:
        tmp = Path(tmp)
        (tmp / "unpacked").mkdir()
        folder = find_package(unpack(submission, tmp / "unpacked"))
        scratch = tmp / "scratch"
        scratch.mkdir()
        stage(folder, scratch)
        readable_by_the_sandbox(scratch)
        # A fresh seed for the hidden and the seeded (training) checks: what one grade reveals of
        # them (its inputs, its fixture) is of no use to the next.
        session = Session(scratch, limits, child_sources(), secrets.randbelow(1 << 30))
        try:
            grading = Grading(session, checks_for(session.seed), titles, limits, jobs)
            grading.first_pass()
            state = grading.resolve()
        finally:
            session.close()
    hints = grading.diagnosis.hints(state, grading.verdicts, grading.by_unit)  # issue #22 hook
    results, told = [], {}  # told: module -> the test that says why it does not import
    for name in wanted:
        unit_titles = grading.by_unit.get(name, [])
        reason = withheld(unit_titles, grading.verdicts)
        for title, share in zip(unit_titles, split_points(BY_NAME[name].points, len(unit_titles))):
            verdict, check = grading.verdicts[title], all_checks()[title]
            if reason and verdict.passed:
                verdict = Verdict(False, verdict.message + "; but " + reason)
            if verdict.module in told:  # said once per file
                verdict = Verdict(False, "could not import %s/%s.py (why: see the test %r)"
                                  % (PACKAGE, verdict.module.replace(".", "/"), told[verdict.module]))
            elif verdict.module:
                told[verdict.module] = title
            output = ("PASS: " if verdict.passed else "FAIL: ") + verdict.message
            output += "".join("\nwarning: " + w for w in verdict.warnings)
            hint = hints.get(name) if hints.get(name) and hints[name].title == title else None  # issue #22 hook
            output += "\n" + hint.line if hint else ""  # issue #22 hook
            results.append(TestResult(name, title, share if verdict.passed else 0.0, share, output, check.public,
                                      hint.as_data() if hint else None))  # issue #22 hook
    return results


def grade_timed(submission, **kwargs):
    """grade() and the wall time it took, in seconds."""
    started = time.monotonic()
    results = grade(submission, **kwargs)
    return results, time.monotonic() - started


__all__ = ["grade", "grade_timed", "sandbox_layers", "SandboxError", "TestResult", "Verdict"]
