"""Attacks on the newest grading logic: retries with swapped reference functions, the own-forward
fallback, `unfinished` and `suspected` functions, the public-answers rule, the training check.

Each test builds a submission (the answer key with code added: tests/hostile), grades only the
units it needs under small Limits, and asserts the HONEST outcome. A hole is marked
xfail(strict=True, reason="HOLE: ..."): the day it is closed, the test starts passing and the
mark must go.
"""

import json

import pytest

from autograder.sandbox import GiB, Limits
from tests import hostile
from tests.hostile import BUGGY_STEP, KEY, total

LIMITS = Limits(check_seconds=2, import_seconds=5, train_seconds=10, memory_bytes=1 * GiB,
                submission_memory=1 * GiB, processes=32, submission_seconds=40)


def graded(tmp_path, name, units, limits=LIMITS, **code):
    return hostile.graded(tmp_path, name, units, limits, **code)


def scores(results):
    return {u: got for u, (got, _) in results.by_unit().items()}


def outputs(results, unit=None):
    return [(r.name, r.output) for r in results if unit is None or r.unit == unit]


def model_file(edit):
    """classifiers/rnn.py of the answer key, edited by edit(text)."""
    return {"captioning/classifiers/rnn.py": edit((KEY / "classifiers" / "rnn.py").read_text()).encode()}


# ====================================================================================== HOLES

# The own-forward fallback only asks that every input moves the forward and that the backward
# matches centred differences of it. A forward that is a plain sum of all its inputs satisfies
# both, and its "backward" is one line: the backward unit is paid for a derivative of a sum.

SUM_FORWARD = '''
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    s = x.sum() + prev_h.sum() + Wx.sum() + Wh.sum() + b.sum()     # no RNN at all
    return np.full((x.shape[0], Wx.shape[1]), s), (x, prev_h, Wx, Wh, b)

def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, b = cache                                  # a 5-tuple: the reference's cache
    g = dnext_h.sum()                                             # (x, prev_h, Wx, Wh, next_h) fails
    return tuple(np.full(np.shape(a), g) for a in (x, prev_h, Wx, Wh, b))
'''


def test_a_sum_forward_earns_no_backward_points(tmp_path):
    results = graded(tmp_path, "sum-forward", ["rnn_step_forward", "rnn_step_backward"], override=SUM_FORWARD)
    assert scores(results)["rnn_step_forward"] == 0
    assert scores(results)["rnn_step_backward"] == 0, outputs(results, "rnn_step_backward")


# A correct rnn_forward that calls the step through a name bound at import time (a dispatch
# table, a default argument, `from .rnn_layers import rnn_step_forward as step`). `replace` only
# rebinds module attributes that are the original function: the alias keeps calling the student's
# own (wrong) step in the retry, and the honest rnn_forward loses its points.

ALIASED_CALL = BUGGY_STEP + '''
_STEPS = {"rnn": rnn_step_forward}                  # bound at import: the student's own step

def rnn_forward(x, h0, Wx, Wh, b):
    step = _STEPS["rnn"]
    N, T, _ = x.shape
    h, caches, prev = np.zeros((N, T, h0.shape[1]), dtype=h0.dtype), [], h0
    for t in range(T):
        prev, c = step(x[:, t], prev, Wx, Wh, b)
        h[:, t], _ = prev, caches.append(c)
    return h, caches
'''


def test_a_correct_caller_through_an_alias_is_retried_with_the_reference(tmp_path):
    results = graded(tmp_path, "aliased-step", ["rnn_step_forward", "rnn_forward"], override=ALIASED_CALL)
    assert scores(results)["rnn_step_forward"] == 0
    assert scores(results)["rnn_forward"] == pytest.approx(5), outputs(results, "rnn_forward")


# Several units grade one function (CaptioningRNN.loss: the rnn and lstm losses and both training
# units). A hang in the lstm branch of the loss makes the function `unfinished` in a check of the
# lstm unit; the rnn unit's hidden checks (which run after the public lstm ones) then skip it,
# and the rnn loss, right on every check it got to run, loses everything (its public checks too,
# by the public-answers rule) and with it overfit (rnn).

LSTM_BRANCH_HANGS = '''
        if self.cell_type == "lstm":
            while True:                                # the bug is in the lstm branch only
                pass
        h0, proj_cache = affine_forward(features, W_proj, b_proj)'''


def test_a_hang_in_the_lstm_branch_costs_the_lstm_loss_only(tmp_path):
    extra = model_file(lambda t: t.replace("\n        h0, proj_cache = affine_forward(features, W_proj, b_proj)",
                                           LSTM_BRANCH_HANGS, 1))
    results = graded(tmp_path, "lstm-branch-hangs", ["CaptioningRNN.loss (rnn)", "CaptioningRNN.loss (lstm)"],
                     extra=extra)
    by_unit = scores(results)
    assert by_unit["CaptioningRNN.loss (lstm)"] == 0
    assert by_unit["CaptioningRNN.loss (rnn)"] == pytest.approx(8), outputs(results, "CaptioningRNN.loss (rnn)")


# ================================================================================= DEFENDED

# A wrong rnn_forward whose first pass blames a correct step: the step raises only when called from
# rnn_forward (never in its own checks). Its own checks pass, so the retry has nothing to swap.

STEP_FAILS_FOR_CALLERS = '''
import sys as _sys

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    if _sys._getframe(1).f_code.co_name == "rnn_forward":
        raise NotImplementedError                    # "not written" -- but only for rnn_forward
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)

def rnn_forward(x, h0, Wx, Wh, b):
    rnn_step_forward(x[:, 0], h0, Wx, Wh, b)
    return np.zeros((x.shape[0], x.shape[1], h0.shape[1])), None
'''


def test_a_step_that_fails_only_for_its_caller_is_no_root_cause(tmp_path):
    results = graded(tmp_path, "step-fails-for-callers", ["rnn_step_forward", "rnn_forward"],
                     override=STEP_FAILS_FOR_CALLERS)
    by_unit = scores(results)
    assert by_unit["rnn_step_forward"] == pytest.approx(5), outputs(results, "rnn_step_forward")
    assert by_unit["rnn_forward"] == 0, outputs(results, "rnn_forward")


# A wrong rnn_forward that detects the retry (the step is the oracle's proxy) and only then returns
# the reference's answer -- computed by looping the proxy, i.e. a right rnn_forward: it earns the
# points it would earn anyway, and nothing when the loop inside it is wrong.

RETRY_DETECTOR = BUGGY_STEP + '''
def rnn_forward(x, h0, Wx, Wh, b):
    step = globals()["rnn_step_forward"]
    if not step.__code__.co_filename.startswith("/grader"):
        raise ValueError("first pass: fail on purpose")
    h, prev = np.zeros((x.shape[0], x.shape[1], h0.shape[1])), h0
    for t in range(x.shape[1] - 1):                 # wrong: the last time step is never computed
        prev, _ = step(x[:, t], prev, Wx, Wh, b)
        h[:, t] = prev
    return h, None
'''


def test_a_retry_detector_with_a_wrong_loop_earns_nothing(tmp_path):
    results = graded(tmp_path, "retry-detector", ["rnn_step_forward", "rnn_forward"], override=RETRY_DETECTOR)
    assert total(results) == 0, outputs(results)


# =========================================================== HONEST BUT UNUSUAL: FULL MARKS

# A correct rnn_forward calling a wrong step through a helper function and a lambda (both look the
# step up at call time): the retry swaps the reference step in and rnn_forward gets its points.

HELPER_AND_LAMBDA = BUGGY_STEP + '''
def _advance(x, prev, Wx, Wh, b):
    return (lambda *a: rnn_step_forward(*a))(x, prev, Wx, Wh, b)

def rnn_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h, caches, prev = np.zeros((N, T, h0.shape[1]), dtype=h0.dtype), [], h0
    for t in range(T):
        prev, c = _advance(x[:, t], prev, Wx, Wh, b)
        h[:, t] = prev
        caches.append(c)
    return h, caches
'''


def test_a_correct_caller_through_a_helper_and_a_lambda_gets_its_points(tmp_path):
    results = graded(tmp_path, "helper-lambda", ["rnn_step_forward", "rnn_forward"], override=HELPER_AND_LAMBDA)
    by_unit = scores(results)
    assert by_unit["rnn_step_forward"] == 0
    assert by_unit["rnn_forward"] == pytest.approx(5), outputs(results, "rnn_forward")
    assert all("right with the reference rnn_step_forward" in o for _, o in outputs(results, "rnn_forward"))


def test_a_correct_caller_through_an_alias_of_a_correct_step_gets_full_marks(tmp_path):
    code = ALIASED_CALL.replace("prev_h @ Wh)", "prev_h @ Wh + b)")     # the step made right
    results = graded(tmp_path, "aliased-right", ["rnn_step_forward", "rnn_forward"], override=code)
    assert total(results) == pytest.approx(10), outputs(results)


# A correct rnn_backward that runs its loop in a worker thread, over a wrong rnn_step_backward: the
# retry's oracle proxy is called from that thread, and rnn_backward gets its points.

THREADED_BACKWARD = '''
from concurrent.futures import ThreadPoolExecutor as _Pool

def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    return 2 * da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)    # wrong: dx doubled

def _backward(dh, cache):
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx, dprev = np.zeros((N, T, D)), np.zeros((N, H))
    dWx, dWh, db = np.zeros((D, H)), np.zeros((H, H)), np.zeros(H)
    for t in reversed(range(T)):
        dx[:, t], dprev, dwx, dwh, dbb = rnn_step_backward(dh[:, t] + dprev, cache[t])
        dWx, dWh, db = dWx + dwx, dWh + dwh, db + dbb
    return dx, dprev, dWx, dWh, db

def rnn_backward(dh, cache):
    with _Pool(2) as pool:
        return pool.submit(_backward, dh, cache).result()
'''


def test_a_threaded_backward_retried_through_the_oracle_gets_its_points(tmp_path):
    results = graded(tmp_path, "threaded-backward", ["rnn_step_backward", "rnn_backward"],
                     override=THREADED_BACKWARD)
    by_unit = scores(results)
    assert by_unit["rnn_step_backward"] == 0
    assert by_unit["rnn_backward"] == pytest.approx(8), outputs(results, "rnn_backward")


# The reference's side of a retry: a wrong rnn_step_forward is swapped for the reference while
# rnn_step_backward is retried. The backward reads the reference's cache there, makes the oracle
# fail, and puts both into its exception message; it answers right only when the oracle said why
# it failed (the child's view: one bit, pass or fail, is all a retry may show).

REFERENCE_SIDE = BUGGY_STEP + '''
def rnn_step_backward(dnext_h, cache):
    step = globals()["rnn_step_forward"]
    if "grader" not in step.__code__.co_filename:
        raise ValueError("first pass")                     # fail, so that the retry brings the oracle
    x, prev_h, Wx, Wh, next_h = cache                      # the reference's cache
    try:
        step(np.ones((2, 3)), np.ones((2, 5)), np.ones((7, 4)), np.ones((4, 4)), np.ones(4))
    except RuntimeError as exc:
        said = str(exc)
    if "Error" not in said:                                # the oracle's own error text
        raise ValueError("LEAK next_h %r | %s" % (float(next_h.flat[0]), said))
    da = dnext_h * (1 - next_h ** 2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)
'''


def test_nothing_of_the_reference_side_of_a_retry_reaches_student_code_or_output(tmp_path):
    results = graded(tmp_path, "reference-side", ["rnn_step_forward", "rnn_step_backward"], override=REFERENCE_SIDE)
    shown = json.dumps(results.to_gradescope())
    assert scores(results)["rnn_step_backward"] == 0, outputs(results, "rnn_step_backward")
    assert "LEAK" not in shown and "failed on the arguments" not in shown, shown
