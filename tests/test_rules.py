"""rules.py: the grading rules of README's "How grading works", one test per rule, on canned
verdicts: no sandbox, no submission, no reference (milliseconds)."""
from dataclasses import dataclass

from autograder.inside.frames import ErrorKind
from autograder.rules import WITHHELD, OwnForward, Resolution, State, Verdict, scored
from autograder.units import BY_NAME, UNITS

STEP, STEP_BACK, RNN = "rnn_step_forward", "rnn_step_backward", "rnn_forward"
LOSS, OVERFIT = "CaptioningRNN.loss (rnn)", "overfit (rnn)"
LSTM_LOSS, LSTM_OVERFIT = "CaptioningRNN.loss (lstm)", "overfit (lstm)"
WHERE = " (captioning/rnn_layers.py, line 7, in f)"


@dataclass(frozen=True)
class Check:
    title: str
    unit: str
    public: bool = True
    gate: bool = False
    backward_of: object = None


def checks_of(*specs):
    """{title: Check} of (unit, name, options) specs."""
    checks = [Check("%s: %s" % (unit, name), unit, **options) for unit, name, options in specs]
    return {c.title: c for c in checks}


def fn(unit):
    return BY_NAME[unit].function


PASS = Verdict(True, "ok")


def wrong(unit):
    return Verdict(False, "next_h: relative error 4e-02", function=None)


def raised(unit, kind):
    return Verdict(False, "%s in %s" % (kind.value, unit), kind=kind, function=fn(unit))


class Runner:
    """rules.Runner with canned answers: retry(titles, swaps) -> {title: Verdict}; what it was asked."""

    def __init__(self, retry=None, own_forward=None):
        self.retry, self.answers, self.calls = retry, own_forward or {}, []

    def run(self, titles, swaps, ahead=()):
        self.calls.append(("run", tuple(titles), swaps) + ((tuple(ahead),) if ahead else ()))
        return self.retry(titles, swaps)

    def own_forward(self, titles):
        self.calls.append(("own_forward", tuple(titles)))
        return {t: self.answers[t] for t in titles}

    def stub_location(self, unit):
        return WHERE


def resolve(checks, first, runner):
    by_unit = {}
    for title, check in checks.items():
        by_unit.setdefault(check.unit, []).append(title)
    resolution = Resolution([u for u in UNITS if u.name in by_unit], by_unit, first, checks, runner)
    return resolution.resolve(), resolution.verdicts, by_unit


def points(checks, verdicts, by_unit):
    results = scored(list(by_unit), by_unit, verdicts, checks, lambda m: "captioning/%s.py" % m)
    return {unit: sum(r.score for r in results if r.unit == unit) for unit in by_unit}, results


def test_rule_1_a_unit_not_written_gets_0_and_its_stub_named():
    checks = checks_of((STEP, "values", {}), (STEP, "hidden", {"public": False}))
    first = {"%s: values" % STEP: raised(STEP, ErrorKind.NOT_IMPLEMENTED), "%s: hidden" % STEP: PASS}
    runner = Runner()
    states, verdicts, by_unit = resolve(checks, first, runner)
    assert states == {STEP: State.NOT_WRITTEN} and runner.calls == []
    assert verdicts["%s: hidden" % STEP].message == "not implemented yet: NotImplementedError" + WHERE  # it passed
    assert verdicts["%s: values" % STEP] == first["%s: values" % STEP]
    assert points(checks, verdicts, by_unit)[0] == {STEP: 0}


def test_rule_2_a_bug_costs_points_once_on_the_unit_that_has_it():
    checks = checks_of((STEP, "values", {}), (RNN, "values", {}))
    first = {"%s: values" % STEP: wrong(STEP), "%s: values" % RNN: wrong(RNN)}
    runner = Runner(retry=lambda titles, swaps: {t: PASS for t in titles})
    states, verdicts, by_unit = resolve(checks, first, runner)
    assert states == {STEP: State.WRONG, RNN: State.PASS}
    assert runner.calls == [("run", ("%s: values" % RNN,), (fn(STEP_BACK), fn(STEP)))]  # the partner comes along
    assert verdicts["%s: values" % RNN].message == ("right with the reference %s in place of yours "
                                                   "(%s fails its own tests)" % (STEP, STEP))
    assert points(checks, verdicts, by_unit)[0] == {STEP: 0, RNN: BY_NAME[RNN].points}


def test_rule_2_a_unit_wrong_with_the_reference_too_says_so_and_never_quotes_the_retry():
    checks = checks_of((STEP, "values", {}), (RNN, "values", {}))
    first = {"%s: values" % STEP: wrong(STEP), "%s: values" % RNN: Verdict(False, "h: shape (2, 3)")}
    runner = Runner(retry=lambda titles, swaps: {t: Verdict(False, "printed by the retry") for t in titles})
    states, verdicts, _ = resolve(checks, first, runner)
    assert states[RNN] is State.WRONG
    assert verdicts["%s: values" % RNN].message == "h: shape (2, 3); it fails with the reference %s too" % STEP


def test_rule_3_a_backward_pass_is_judged_by_numerical_gradients_of_its_own_forward():
    back = "%s: gradients" % STEP_BACK
    checks = checks_of((STEP, "values", {}), (STEP_BACK, "gradients", {"backward_of": ("rnn_step", {}, 0)}))
    first = {"%s: values" % STEP: wrong(STEP), back: wrong(STEP_BACK)}
    near, agrees = Verdict(True, "within 1e-3"), Verdict(True, "largest relative error 1e-9")
    runner = Runner(retry=lambda titles, swaps: {t: wrong(STEP_BACK) for t in titles},
                    own_forward={back: OwnForward(near, agrees)})
    states, verdicts, _ = resolve(checks, first, runner)
    assert states[STEP_BACK] is State.PASS and ("own_forward", (back,)) in runner.calls
    assert verdicts[back].message.startswith("agrees with numerical gradients of your own %s" % STEP)
    far = Verdict(False, "your forward is 40% off the layer's")
    runner = Runner(retry=lambda titles, swaps: {t: wrong(STEP_BACK) for t in titles},
                    own_forward={back: OwnForward(far, None)})
    states, verdicts, _ = resolve(checks, first, runner)
    assert states[STEP_BACK] is State.WRONG and far.message in verdicts[back].message


def test_rule_2_the_units_above_one_wrong_unit_are_retried_together():
    """Their retries ask for the same swaps: the first one runs the later ones' checks ahead (one
    sandboxed process), each unit is still resolved on its own, and a later unit whose root causes
    change (the retry leaves a unit in between wrong) is asked with its own swaps."""
    checks = checks_of((STEP, "values", {}), (RNN, "values", {}), (LOSS, "value", {}))
    first = {title: wrong(check.unit) for title, check in checks.items()}
    swaps, rnn_swaps = (fn(STEP_BACK), fn(STEP)), tuple(sorted({fn(STEP_BACK), fn(STEP), fn(RNN), fn("rnn_backward")}))
    runner = Runner(retry=lambda titles, swaps: {t: PASS for t in titles})
    states, _, _ = resolve(checks, first, runner)
    assert states == {STEP: State.WRONG, RNN: State.PASS, LOSS: State.PASS}
    assert runner.calls == [("run", ("%s: values" % RNN,), swaps, ("%s: value" % LOSS,)),
                            ("run", ("%s: value" % LOSS,), swaps)]
    runner = Runner(retry=lambda titles, swaps: {t: wrong(RNN) if t.startswith(RNN) else PASS for t in titles})
    states, _, _ = resolve(checks, first, runner)
    assert states == {STEP: State.WRONG, RNN: State.WRONG, LOSS: State.PASS}
    assert runner.calls == [("run", ("%s: values" % RNN,), swaps, ("%s: value" % LOSS,)),
                            ("run", ("%s: value" % LOSS,), rnn_swaps)]


def test_rule_2_one_bug_in_a_method_two_units_grade_is_charged_once():
    checks = checks_of((LOSS, "value", {}), (LOSS, "gradients", {}), (LOSS, "padded", {"public": False}),
                       (LOSS, "N=1", {"public": False}), (LSTM_LOSS, "value", {}), (LSTM_LOSS, "gradients", {}),
                       (LSTM_LOSS, "padded", {"public": False}), (LSTM_LOSS, "N=1", {"public": False}))
    first = {"%s: value" % LOSS: wrong(LOSS), "%s: gradients" % LOSS: PASS, "%s: padded" % LOSS: wrong(LOSS),
             "%s: N=1" % LOSS: PASS, "%s: value" % LSTM_LOSS: wrong(LSTM_LOSS), "%s: gradients" % LSTM_LOSS: PASS,
             "%s: padded" % LSTM_LOSS: wrong(LSTM_LOSS), "%s: N=1" % LSTM_LOSS: wrong(LSTM_LOSS)}  # hidden: by chance
    states, verdicts, by_unit = resolve(checks, first, Runner(retry=lambda titles, swaps: {}))
    assert states == {LOSS: State.WRONG, LSTM_LOSS: State.PASS}
    assert verdicts["%s: padded" % LSTM_LOSS].message.startswith("the same failure as %s (" % LOSS)
    earned = points(checks, verdicts, by_unit)[0]
    assert earned[LOSS] < BY_NAME[LOSS].points and earned[LSTM_LOSS] == BY_NAME[LSTM_LOSS].points
    first["%s: gradients" % LSTM_LOSS] = wrong(LSTM_LOSS)  # a public failure of its own: its own bug too
    states, _, _ = resolve(checks, first, Runner(retry=lambda titles, swaps: {}))
    assert states == {LOSS: State.WRONG, LSTM_LOSS: State.WRONG}
    # A method that raises for both cells (torch.autograd, which the numpy units cannot import; a
    # stub of its own making) ran nothing of the lstm's code: that unit is charged too.
    crashed = {t: (PASS if v.passed else raised(checks[t].unit, ErrorKind.EXCEPTION)) for t, v in first.items()}
    crashed["%s: gradients" % LSTM_LOSS] = PASS
    states, _, _ = resolve(checks, crashed, Runner(retry=lambda titles, swaps: {}))
    assert states == {LOSS: State.WRONG, LSTM_LOSS: State.WRONG}
    # Nor does a method failing every check for both cells (zeros returned for both): the second
    # unit passes nothing of its own.
    zeros = {t: wrong(checks[t].unit) for t in first}
    states, _, _ = resolve(checks, zeros, Runner(retry=lambda titles, swaps: {}))
    assert states == {LOSS: State.WRONG, LSTM_LOSS: State.WRONG}


def test_rule_4_training_is_graded_with_the_students_own_loss_and_earns_when_it_reaches_its_target():
    checks = checks_of((LOSS, "value", {}), (OVERFIT, "loss target", {}))
    first = {"%s: value" % LOSS: wrong(LOSS), "%s: loss target" % OVERFIT: PASS}
    runner = Runner(retry=lambda titles, swaps: {t: PASS for t in titles})
    states, verdicts, by_unit = resolve(checks, first, runner)
    assert states == {LOSS: State.WRONG, OVERFIT: State.PASS} and runner.calls == []  # the loss: never swapped
    assert points(checks, verdicts, by_unit)[0] == {LOSS: 0, OVERFIT: BY_NAME[OVERFIT].points}
    first["%s: loss target" % OVERFIT] = Verdict(False, "final training loss is 3.2, must be below 0.1")
    states, verdicts, by_unit = resolve(checks, first, runner)
    assert states == {LOSS: State.WRONG, OVERFIT: State.NEEDS_LOSS} and runner.calls == []
    assert verdicts["%s: loss target" % OVERFIT].message == ("final training loss is 3.2, must be below 0.1 "
                                                             "(training uses your own %s, which is wrong: see its "
                                                             "test)" % LOSS)
    assert points(checks, verdicts, by_unit)[0] == {LOSS: 0, OVERFIT: 0}


def test_rule_5_a_unit_that_ran_past_its_limit_did_not_finish_and_is_not_retried():
    checks = checks_of((STEP, "values", {}), (RNN, "values", {}))
    first = {"%s: values" % STEP: PASS, "%s: values" % RNN: raised(RNN, ErrorKind.TIMEOUT)}
    runner = Runner()
    states, _, _ = resolve(checks, first, runner)
    assert states == {STEP: State.PASS, RNN: State.TIMED_OUT} and runner.calls == []


def test_rule_6_public_checks_count_only_with_a_hidden_one():
    checks = checks_of((STEP, "values", {}), (STEP, "N=1", {"public": False}))
    first = {"%s: values" % STEP: PASS, "%s: N=1" % STEP: wrong(STEP)}
    states, verdicts, by_unit = resolve(checks, first, Runner())
    earned, results = points(checks, verdicts, by_unit)
    assert states[STEP] is State.WRONG and earned == {STEP: 0}
    assert results[0].output.startswith("FAIL: every hidden check of this unit fails")
    assert results[0].output.endswith("; %s: ok" % WITHHELD)  # never "FAIL: largest relative error 0.00e+00"


def test_rule_7_a_failed_gate_withholds_the_whole_unit():
    checks = checks_of((STEP_BACK, "gradients", {}), (STEP_BACK, "large", {"public": False, "gate": True}),
                       (STEP_BACK, "N=1", {"public": False}))
    first = {"%s: gradients" % STEP_BACK: PASS, "%s: large" % STEP_BACK: raised(STEP_BACK, ErrorKind.TIMEOUT),
             "%s: N=1" % STEP_BACK: PASS}
    states, verdicts, by_unit = resolve(checks, first, Runner())
    earned, results = points(checks, verdicts, by_unit)
    assert states[STEP_BACK] is State.TIMED_OUT and earned == {STEP_BACK: 0}
    assert all("ran out of time" in r.output and "a backward pass must be analytic" in r.output
               for r in results if "large" not in r.name)
    first["%s: large" % STEP_BACK] = Verdict(False, "loss: largest relative error 3.1e-01 exceeds the tolerance 1e-06")
    states, verdicts, by_unit = resolve(checks, first, Runner(retry=lambda titles, swaps: {}))
    earned, results = points(checks, verdicts, by_unit)
    assert states[STEP_BACK] is State.WRONG and earned == {STEP_BACK: 0}  # a wrong value is not "too slow"
    assert all(r.output.startswith("FAIL: the check on large inputs fails, and this unit earns points only with "
                                   "it; " + WITHHELD) for r in results if "large" not in r.name)


def test_points_split_exactly_and_a_broken_module_is_explained_once():
    checks = checks_of((STEP, "a", {}), (STEP, "b", {}), (STEP, "c", {"public": False}))
    broken = Verdict(False, "could not import captioning/rnn_layers.py: SyntaxError", kind=ErrorKind.IMPORT,
                     module="rnn_layers")
    first = dict.fromkeys(checks, broken)
    _, verdicts, by_unit = resolve(checks, first, Runner())
    _, results = points(checks, verdicts, by_unit)
    assert sum(r.max_score for r in results) == BY_NAME[STEP].points
    assert results[0].output == "FAIL: could not import captioning/rnn_layers.py: SyntaxError"
    assert results[1].output == "FAIL: could not import captioning/rnn_layers.py (why: see the test '%s: a')" % STEP
