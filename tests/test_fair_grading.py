"""Partial and misbehaving submissions are graded fairly: each unit on its own code.

- one unit left as the release's stub costs exactly that unit (and the training unit when it is
  the model's loss), with a reason naming it;
- a backward pass whose forward is broken, with a cache layout of its own, is checked against
  numerical gradients of its own forward, when that forward is close to the layer's;
- a hang costs one time-out: later checks that call the hung function skip it at once;
- training points need the student's own working loss and the model's parameter shapes.

Grades run under short limits; each submission grades only the unit it breaks and the units that
call it (the others never call the broken code), the training units only where trained_beside says.
"""
import re
import time

import pytest

from autograder.grade import grade
from autograder.results import GradingOptions
from autograder.sandbox import GiB, Limits
from autograder.units import BY_NAME, UNITS, closure
from tests import mutants as M
from tests.hostile import lost_units

LIMITS = Limits(check_seconds=3, train_seconds=60, import_seconds=10, memory_bytes=2 * GiB, submission_seconds=240)
CODE_UNITS = [u for u in UNITS if not u.training]


def dependents(name):
    """name and every unit that calls it, directly or not."""
    return [u.name for u in UNITS if u.name == name or name in closure(u.name)]


def released_body(text, function):
    """The release's stub of one function or method: its text from `def` to the next `def`."""
    match = re.search(r"^([ \t]*)def %s\(.*?(?=^\s*def |\Z)" % function, text, re.S | re.M)
    return match.group(0)


def stub_unit(unit, dest):
    """The answer key with exactly `unit`'s function put back to the release's stub."""
    module, qualname = BY_NAME[unit].function.split(":")
    rel = "captioning/%s.py" % module.replace(".", "/")
    folder = M.Submission("stub", ()).build(dest)
    function = qualname.split(".")[-1]
    key, released = (folder / rel).read_text(), (M.RELEASE / rel).read_text()
    (folder / rel).write_text(key.replace(released_body(key, function), released_body(released, function)))
    return folder


def trained_beside(unit):
    """The training units graded with `unit` left as the stub: those whose loss it is (they lose
    too), and those whose first layer (in UNITS order) it is, which keep their points trained with
    the reference layer in its place. One layer per model: every layer takes that same path, and
    such a training, its layers served by the oracle, takes seconds."""
    return [t.name for t in UNITS if t.training and unit in closure(t.name)
            and (BY_NAME[unit].function == BY_NAME[t.depends[0]].function
                 or unit == next(u.name for u in UNITS if u.name in closure(t.name)))]


@pytest.mark.slow
@pytest.mark.parametrize("unit", [u.name for u in CODE_UNITS])
def test_one_unit_left_as_the_stub_costs_that_unit_only(tmp_path, unit):
    folder = stub_unit(unit, tmp_path / "sub")
    graded = [u for u in dependents(unit) if not BY_NAME[u].training] + trained_beside(unit)
    results = grade(folder, GradingOptions(units=sorted(set(graded)), limits=LIMITS, jobs=2))
    same_function = {u.name for u in UNITS if u.function == BY_NAME[unit].function}
    expected = {unit} | {u for u in same_function if BY_NAME[u].training} & set(graded)
    failed = "\n".join("%s -> %s" % (r.name, r.output) for r in results if r.score < r.max_score)
    assert lost_units(results) == expected, failed
    for r in results:
        if r.unit in expected:
            assert "not implemented yet" in r.output, r.output
        elif "reference" in r.output:  # passed on a retry: the message names the cause, and only it
            assert "(%s is not written yet)" % unit in r.output, r.output


def test_the_untouched_release_names_each_units_own_stub():
    units = ["rnn_step_forward", "rnn_step_backward", "word_embedding_backward"]
    results = grade(M.RELEASE, GradingOptions(units=units, limits=LIMITS))
    assert sum(r.score for r in results) == 0
    for r in results:
        assert "not implemented yet" in r.output and "in %s)" % r.unit in r.output, r.output


# A correct backward pass with a home-made cache, for a forward pass that clips tanh's input to
# [-3, 3] (outputs within 0.5% of the layer's): the two agree with each other, and that forward is
# close enough to the layer's for its own numerical gradients to stand in for the layer's.
CLIPPED_DICT_CACHE = (
    M.Body(M.LAYERS, "rnn_step_forward", """
        a = x @ Wx + prev_h @ Wh + b
        next_h = np.tanh(np.clip(a, -3, 3))
        cache = {"x": x, "prev_h": prev_h, "Wx": Wx, "Wh": Wh, "a": a, "next_h": next_h}
    """),
    M.Body(M.LAYERS, "rnn_step_backward", """
        da = dnext_h * (1 - cache["next_h"] ** 2) * (np.abs(cache["a"]) < 3)
        dx, dprev_h = da @ cache["Wx"].T, da @ cache["Wh"].T
        dWx, dWh, db = cache["x"].T @ da, cache["prev_h"].T @ da, da.sum(axis=0)
    """))
UNCLIPPED_BACKWARD = M.Patch(M.LAYERS, 'da = dnext_h * (1 - cache["next_h"] ** 2) * (np.abs(cache["a"]) < 3)',
                             'da = dnext_h * (1 - cache["next_h"] ** 2)')
RELU_FORWARD = M.Patch(M.LAYERS, "next_h = np.tanh(np.clip(a, -3, 3))", "next_h = np.maximum(a, 0)")
RELU_BACKWARD = M.Patch(M.LAYERS, 'da = dnext_h * (1 - cache["next_h"] ** 2) * (np.abs(cache["a"]) < 3)',
                        'da = dnext_h * (cache["a"] > 0)')


def test_backward_with_its_own_cache_is_checked_against_its_own_forward(tmp_path):
    folder = M.Submission("clipped_dict", CLIPPED_DICT_CACHE).build(tmp_path / "sub")
    results = grade(folder, GradingOptions(units=["rnn_step_forward", "rnn_step_backward"], limits=LIMITS))
    assert lost_units(results) == {"rnn_step_forward"}
    backward = [r for r in results if r.unit == "rnn_step_backward"]
    assert any("numerical gradients of your own rnn_step_forward" in r.output for r in backward), backward


@pytest.mark.parametrize("name,edits,why", [
    ("does not match it", (UNCLIPPED_BACKWARD,), "does not match numerical gradients of your own"),
    ("matches a forward far from the layer's", (RELU_FORWARD, RELU_BACKWARD), "far from this layer's"),
])
def test_backward_checked_against_its_own_forward_can_still_fail(tmp_path, name, edits, why):
    folder = M.Submission("dict_cache", CLIPPED_DICT_CACHE + edits).build(tmp_path / "sub")
    results = grade(folder, GradingOptions(units=["rnn_step_forward", "rnn_step_backward"], limits=LIMITS))
    assert lost_units(results) == {"rnn_step_forward", "rnn_step_backward"}
    assert any(why in r.output for r in results if r.unit == "rnn_step_backward"), [r.output for r in results]


LOOP = "while True:\n    pass\n"


@pytest.mark.parametrize("unit,graded", [
    ("rnn_step_forward", ["rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward"]),
    ("lstm_forward", ["lstm_forward", "lstm_backward", "CaptioningRNN.loss (lstm)"]),
    ("CaptioningRNN.loss (rnn)", ["CaptioningRNN.loss (rnn)", "overfit (rnn)"]),
])
@pytest.mark.slow
def test_a_hang_costs_one_time_out(tmp_path, unit, graded):
    qualname = BY_NAME[unit].function.split(":")[1]
    file = M.MODEL if "." in qualname else M.LAYERS
    folder = M.Submission("loop", (M.Body(file, qualname.split(".")[-1], LOOP),)).build(tmp_path / "sub")
    limits = Limits(**{**LIMITS.__dict__, "check_seconds": 2, "train_seconds": 20})
    started = time.monotonic()
    results = grade(folder, GradingOptions(units=graded, limits=limits, jobs=1))
    seconds = time.monotonic() - started
    hung = {u for u in graded if BY_NAME[u].function == BY_NAME[unit].function}
    assert lost_units(results) == hung, [(r.name, r.output) for r in results if r.score < r.max_score]
    timed_out = [r for r in results if "time limit: this check took longer" in r.output]
    assert len(timed_out) == 1, [r.output for r in timed_out]  # one wait, then every caller skips it
    assert "(in %s)" % qualname in timed_out[0].output
    assert all("did not finish" in r.output for r in results if r.unit in hung and r not in timed_out)
    print("graded in %.1f s" % seconds)


def test_training_needs_the_students_own_working_loss(tmp_path):
    folder = stub_unit("CaptioningRNN.loss (rnn)", tmp_path / "sub")
    results = grade(folder, GradingOptions(units=["overfit (rnn)"], limits=LIMITS))
    assert sum(r.score for r in results) == 0
    assert "not implemented yet" in results[0].output


def test_training_points_need_the_reference_parameter_shapes(tmp_path):
    """A model with an embedding row too many trains fine but is not the model asked for."""
    extra = M.Patch(M.MODEL, "np.random.randn(vocab_size, wordvec_dim) / 100",
                    "np.random.randn(vocab_size + 1, wordvec_dim) / 100")
    folder = M.Submission("extra_row", (extra,)).build(tmp_path / "sub")
    results = grade(folder, GradingOptions(units=["overfit (rnn)"], limits=LIMITS))
    assert sum(r.score for r in results) == 0
    assert "trained parameters are" in results[0].output, results[0].output


def test_memorising_the_fixture_earns_nothing(tmp_path):
    """Stubs everywhere; a loss that returns the fixture's answer and zero gradients."""
    cheat = M.Body(M.MODEL, "loss", """
        loss = 0.0
        grads = {k: np.zeros_like(v) for k, v in self.params.items()}
    """)
    folder = M.Submission("memorise", (cheat,)).build(tmp_path / "sub")
    (folder / M.LAYERS).write_text(M.stub_text((folder / M.LAYERS).read_text()))
    results = grade(folder, GradingOptions(units=["CaptioningRNN.loss (rnn)", "overfit (rnn)", "overfit (lstm)"],
                                           limits=LIMITS))
    assert sum(r.score for r in results) == 0, [(r.name, r.output) for r in results if r.score]


def test_a_bug_in_the_loss_both_cells_use_costs_once_and_training_that_reaches_its_target_earns(tmp_path):
    """Issue #28: the loss without its <NULL> mask costs CaptioningRNN.loss (rnn) only (8 points, not
    28): the lstm unit fails as it does, training with that loss reaches its targets, and no message
    blames a backward pass for the large-input check, which fails on the loss's value."""
    sub = next(s for s in M.MUTANTS if s.name == "loss_no_mask")
    units = [M.RNN_LOSS, "overfit (rnn)", M.LSTM_LOSS, "overfit (lstm)"]
    results = grade(sub.build(tmp_path / "sub"), GradingOptions(units=units, limits=LIMITS, jobs=2))
    assert lost_units(results) == {M.RNN_LOSS}, "\n".join(r.name + " -> " + r.output for r in results)
    assert sum(r.max_score - r.score for r in results) == BY_NAME[M.RNN_LOSS].points
    assert not [r.output for r in results if "analytic" in r.output or r.output.startswith("FAIL: largest relative")]
    gate = next(r for r in results if r.name.startswith(M.RNN_LOSS + ": large inputs"))
    assert gate.output.startswith("FAIL: loss: largest relative error "), gate.output  # what is wrong, how much
