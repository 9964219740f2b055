"""Attacks on the grader, the way a cheating student would try them.

Each test builds a hostile submission (the answer key with code added: tests/hostile), grades only
the units it needs under small Limits, and asserts the HONEST outcome: no undeserved points,
nothing read or left behind, the grader still fine and a result with a reason for every test.

Every hole these attacks found is closed; a new one goes here as a test first. The whole file
takes well under two minutes.
"""
import base64
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autograder.grade import grade
from autograder.reference import all_checks, checks_module, reference_impl
from autograder.results import GradingOptions, GradingResults
from autograder.sandbox import GiB, Limits
from tests import hostile
from tests import mutants as M
from tests.hostile import CORRECT_STEP, KEY, ROOT, clear_user_keyring, key_users, make, mine, throwaway_processes, total

LIMITS = Limits(check_seconds=2, import_seconds=5, train_seconds=10, memory_bytes=1 * GiB, processes=32,
                submission_seconds=30, output_bytes=16 * 1024)
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="uid isolation needs the grader to run as root")


def graded(tmp_path, name, units, limits=LIMITS, **code):
    return hostile.graded(tmp_path, name, units, limits, **code)


def model_file(extra_code):
    """classifiers/rnn.py of the answer key with code appended."""
    return {"captioning/classifiers/rnn.py": ((KEY / "classifiers" / "rnn.py").read_text() + extra_code).encode()}


# A unit function that writes its own frame on the result pipe (fd sys.argv[1]) for the check that
# is running (check_id, a local of child.main), then stops: FRAME is an expression of `cid`.
FORGE = '''
import json as _json, os as _os, sys as _sys

def rnn_step_forward(*args):
    f = _sys._getframe()
    while f is not None and "check_id" not in f.f_locals:
        f = f.f_back
    cid = f.f_locals["check_id"]
    data = %s
    _os.write(int(_sys.argv[1]), data)
    _os._exit(0)
'''


def forged(expression):
    return FORGE % expression


def header(tree, size=0, payload="b''", id_expr="cid"):
    """A frame expression: a JSON header with this tree and size, then the payload."""
    return '(_json.dumps({"id": %s, "tree": %s, "size": %d}) + "\\n").encode() + %s' % (id_expr, tree, size, payload)


# ====================================================================================== HOLES

NAN_BACKWARD = '''
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = x @ Wx + prev_h @ Wh + b          # wrong on purpose (no tanh): rnn_step_forward "is wrong"
    return next_h, (x, prev_h, Wx, Wh)

def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh = cache[:4]
    nan = lambda a: np.full(np.shape(a), np.nan)
    return nan(x), nan(prev_h), nan(Wx), nan(Wh), np.full(np.shape(Wx)[1], np.nan)
'''


def test_nan_gradients_pass_the_own_forward_fallback(tmp_path):
    results = graded(tmp_path, "nan-backward", ["rnn_step_backward"], override=NAN_BACKWARD)
    assert total(results) == 0, [r.output for r in results]


OWN_GRADIENT_FORGERY = '''
import sys as _sys, numpy as _np
_C = _sys.modules.get("_grader.checks")
if _C is not None:                      # the grader's own probes live in this process: replace one
    def _forged(layer, inputs, seed, h=1e-5):
        def run(impl):
            args = {k: v.astype(_np.float64) for k, v in inputs.items()}
            d = _np.concatenate([u.ravel() for u in _C.upstream_order(_C.upstream(layer, args, seed))])
            out = {}
            for name in _C.GRAD_NAMES[layer]:
                n = args[name].size     # "forward outputs" at +-h whose centred differences are all ones
                out["d" + name] = _np.ones(args[name].shape)
                out["+" + name] = _np.outer(_np.full(n, 2 * h), d) / (d @ d)
                out["-" + name] = _np.zeros((n, d.size))
            return out
        return run
    _C.own_gradient_probe = _forged
'''
STUBS = "".join("\ndef %s(*args):\n    return None\n" % f for f in (
    "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward"))


def test_forged_own_gradient_probe_with_stubs(tmp_path):
    results = graded(tmp_path, "forged-own-gradient", ["rnn_step_backward", "rnn_backward"],
                     prelude=OWN_GRADIENT_FORGERY, override=STUBS)
    assert total(results) == 0, [r.output for r in results]


# Forward passes returning zeros, backward passes returning None, and the grader's probe replaced in
# the student's process by one reporting "forward outputs" whose centred differences are all ones,
# moving only outputs the layer's own do move. The own-forward check (README rule 3) needs a forward
# close to the layer's on the check's inputs: zeros never are.
ZERO_FORWARDS_FORGED_PROBE = '''
import sys as _sys, numpy as _np
_C = _sys.modules.get("_grader.checks")


def _moved(name, shape, index, out):
    """Outputs (of shape out) the layer's own move when element index of input name moves: its batch
    row for x and h (at its time step, or the first), its element for c, its column for weights."""
    m, i = _np.zeros(out, bool), _np.unravel_index(index, shape)
    if name == "c":
        m[i] = True
    elif name in ("x", "h"):
        m[(i[0], i[1] if name == "x" else 0) if len(out) == 3 else i[0]] = True
    else:
        m[(slice(None),) + ((0,) if len(out) == 3 else ()) + (i[-1] % out[-1],)] = True
    return m


def _forged(layer, inputs, seed, point=(), h=1e-5):    # either protocol: all points at once, or one
    def run(impl):
        args = {k: v.astype(_np.float64) for k, v in inputs.items()}
        up = _C.upstream_order(_C.upstream(layer, args, seed))
        d = _np.concatenate([u.ravel() for u in up])
        outs = _C.forward_outputs(layer, impl, args)      # the student's own forward: zeros

        def half_difference(name, index):
            m = _np.zeros(d.size)
            m[:up[0].size] = _moved(name, args[name].shape, index, up[0].shape).ravel()
            return h * m * d / (m * d @ d)
        if point:
            flat = point[2] * half_difference(*point[:2])
            parts = _np.split(flat, _np.cumsum([o.size for o in outs.values()])[:-1])
            return {k: o + part.reshape(o.shape) for (k, o), part in zip(outs.items(), parts)}
        result = dict(outs)
        for name in _C.GRAD_NAMES[layer]:
            rows = _np.array([half_difference(name, i) for i in range(args[name].size)])
            result.update({"d" + name: _np.ones(args[name].shape), "+" + name: rows, "-" + name: -rows})
        return result
    return run


if _C is not None:
    _C.own_gradient_probe = _forged
'''
ZERO_FORWARDS = """
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    return np.zeros((x.shape[0], Wx.shape[1])), None

def rnn_forward(x, h0, Wx, Wh, b):
    return np.zeros(x.shape[:2] + h0.shape[1:]), None

def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    return np.zeros(prev_h.shape), np.zeros(prev_c.shape), None

def lstm_forward(x, h0, Wx, Wh, b):
    return np.zeros(x.shape[:2] + h0.shape[1:]), None
""" + "".join("\ndef %s(*args):\n    return None\n" % f for f in (
    "rnn_step_backward", "rnn_backward", "lstm_step_backward", "lstm_backward"))


@pytest.mark.slow
def test_forged_own_forward_gradients_of_zero_forwards_earn_nothing(tmp_path):
    results = graded(tmp_path, "forged-zero-forwards", ["rnn_step_backward", "rnn_backward", "lstm_step_backward",
                                                        "lstm_backward"],
                     prelude=ZERO_FORWARDS_FORGED_PROBE, override=ZERO_FORWARDS)
    assert total(results) == 0, [(r.name, r.output) for r in results if r.score]
    assert any("far from this layer's" in r.output for r in results), [r.output for r in results]


@pytest.mark.slow
def test_numerical_gradients_in_place_of_backward_passes_earn_nothing(tmp_path):
    """tests/mutants.py FINITE_DIFFERENCES: right on every small input; each unit's gate (README
    rule 7) gives it no time for two forward passes per input element, and takes the unit's other
    checks along. (Its slow checks' time-outs also cost units it did not cheat on: not asserted.)"""
    sub = M.FINITE_DIFFERENCES
    limits = Limits(check_seconds=2, import_seconds=5, memory_bytes=2 * GiB, submission_seconds=300)
    results = grade(sub.build(tmp_path / "sub"), GradingOptions(units=sorted(sub.lost), limits=limits, jobs=2))
    assert {r.unit for r in results} == sub.lost
    assert total(results) == 0, [(r.name, r.output) for r in results if r.score]
    gates = [r for r in results if all_checks()[r.name].gate]
    assert len(gates) == len(sub.lost) and not any(r.output.startswith("PASS") for r in gates)
    withheld = [r for r in results if r.output.startswith("FAIL: the check on large inputs ran out of time")]
    assert any(r.unit == "rnn_step_backward" for r in withheld), [r.output for r in results]


def test_forged_subarray_dtype_crashes_the_grader(tmp_path):
    frame = header('{"d": {"next_h": {"a": ["(99999999999999,)f8", [1]]}}}')
    results = graded(tmp_path, "dtype-crash", ["rnn_step_forward"], override=forged(frame))
    assert total(results) == 0


def test_forged_huge_empty_shape_crashes_the_grader(tmp_path):
    frame = header('{"d": {"next_h": {"a": ["<f8", [2**63, 0]]}}}')
    results = graded(tmp_path, "shape-crash", ["rnn_step_forward"], override=forged(frame))
    assert total(results) == 0


MEMORY_PROBE = r'''
import resource, sys, tempfile
from autograder.grade import grade
from autograder.results import GradingOptions, GradingResults
from autograder.sandbox import GiB, Limits
from tests.hostile import KEY, make
limits = Limits(check_seconds=2, import_seconds=5, train_seconds=5, memory_bytes=1 * GiB, processes=32,
                submission_seconds=30)
unit = ["CaptioningRNN.sample (rnn)"]
model = (KEY / "classifiers" / "rnn.py").read_text()
with tempfile.TemporaryDirectory() as tmp:
    honest = make(tmp, "honest", extra={"captioning/classifiers/rnn.py": model.encode()})
    grade(honest, GradingOptions(units=unit, limits=limits, jobs=1))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # no bytes at all on the pipe: captions of shape (2e6, 0); the parent's tokens comparison
    # turns them into 2e6 Python lists (a (1e9, 0) array would be ~60 GB)
    model += "\nCaptioningRNN.sample = lambda self, features, max_length=30: np.zeros((2000000, 0), np.int8)\n"
    results = grade(make(tmp, "empty-rows", extra={"captioning/classifiers/rnn.py": model.encode()}),
                    GradingOptions(units=unit, limits=limits, jobs=1))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("GROWTH_KB=%%d OUTPUT=%%d SCORE=%%s" %% (after - before, max(len(r.output) for r in results),
                                          sum(r.score for r in results)))
'''


def test_empty_rows_from_sample_blow_up_grader_memory():
    probe = subprocess.run([sys.executable, "-c", MEMORY_PROBE % {"root": str(ROOT)}], capture_output=True,
                           text=True, timeout=100, cwd=ROOT)
    found = re.search(r"GROWTH_KB=(\d+) OUTPUT=(\d+) SCORE=(\S+)", probe.stdout)
    assert found, probe.stdout + probe.stderr
    growth_kb, output_chars, score = int(found.group(1)), int(found.group(2)), float(found.group(3))
    assert score == 0
    assert growth_kb < 64 * 1024, "the grader grew by %d MB on a zero-byte answer" % (growth_kb >> 10)
    assert output_chars < 100_000, "a feedback message of %d characters" % output_chars


ORACLE_SPY = '''
import base64 as _b64, hashlib as _hl, sys as _sys

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    return np.zeros_like(prev_h), None          # sacrificed: it "is wrong", so retries swap it in

def _key(x, prev_h):
    return _hl.md5(np.ascontiguousarray(x).tobytes() + np.ascontiguousarray(prev_h).tobytes()).hexdigest()[:8]

def rnn_forward(x, h0, Wx, Wh, b):
    step = globals()["rnn_step_forward"]
    if not step.__code__.co_filename.startswith("/grader"):
        raise ValueError("first pass")            # fail, so that the retry brings the oracle
    C = _sys.modules["_grader.checks"]
    checks = C.PUBLIC_CHECKS + _sys.modules["_grader.hidden"].hidden_checks(C)   # hidden inputs, in the child
    seen = []
    class Spy:
        warnings = []
        def call(self, name, *args):
            out = step(*args)                   # the reference rnn_step_forward, served by the oracle
            seen.append("%s:%d:%d:%s" % (_key(args[0], args[1]), out[0].shape[0], out[0].shape[1],
                        _b64.b64encode(out[0].astype("<f4").tobytes()).decode()))
            return out
    for c in checks:
        if c.unit == "rnn_step_forward":
            c.run(Spy())
    raise ValueError("LEAK[" + ";".join(seen) + "]")     # shown to the student as feedback
'''
REPLAY = '''
import base64 as _b64, hashlib as _hl
_TABLE = {}
for _item in %r.split(";"):
    _k, _n, _m, _data = _item.split(":")
    _TABLE[_k] = np.frombuffer(_b64.b64decode(_data), "<f4").reshape(int(_n), int(_m)).astype(np.float64)

def rnn_step_forward(x, prev_h, Wx, Wh, b):       # no RNN at all: a lookup table of leaked answers
    k = _hl.md5(np.ascontiguousarray(x).tobytes() + np.ascontiguousarray(prev_h).tobytes()).hexdigest()[:8]
    return _TABLE.get(k, np.zeros_like(prev_h)).astype(x.dtype), None
'''


def test_oracle_leaks_hidden_expected_values_for_a_later_submission(tmp_path):
    first = graded(tmp_path, "spy", ["rnn_forward"], override=ORACLE_SPY)
    leak = next((m.group(1) for r in first for m in [re.search(r"LEAK\[([^\]]*)\]", r.output)] if m), None)
    if leak is None:
        return  # nothing leaked: defended
    second = graded(tmp_path, "replay", ["rnn_step_forward"], override=REPLAY % leak)
    assert total(second) == 0, [r.output for r in second]


MEMORISED = '''

import base64 as _b64, sys as _sys
_MEMO = %r
_honest_loss = CaptioningRNN.loss

def _loss(self, features, captions):
    if "captioning_solver" in _sys._getframe(1).f_code.co_filename and self.params["W_vocab"].shape == (128, 40):
        for k, (shape, data) in _MEMO.items():      # the overfit fixture's answer, trained offline
            self.params[k][...] = np.frombuffer(_b64.b64decode(data), "<f4").reshape(shape)
        return 0.0, {k: np.zeros_like(v) for k, v in self.params.items()}   # and no training at all
    return _honest_loss(self, features, captions)

CaptioningRNN.loss = _loss
'''


def test_memorised_overfit_model_that_never_trains(tmp_path):
    params = checks_module().overfit_probe("rnn")(reference_impl())
    memo = {k: (v.shape, base64.b64encode(v.astype("<f4").tobytes()).decode()) for k, v in params.items()}
    results = graded(tmp_path, "memorised", ["overfit (rnn)"], extra=model_file(MEMORISED % memo))
    assert total(results) == 0, [r.output for r in results]


LITERAL_PROBES = '''
import sys as _sys
_C = _sys.modules.get("_grader.checks")
if _C is not None:                      # every public check with printed expected values returns them
    for _c in _C.PUBLIC_CHECKS:
        if isinstance(_c.expected, dict) and _c.evaluate is None:
            _c.run = (lambda e: (lambda impl: dict(e)))(_c.expected)
'''


def test_stubs_with_probes_returning_public_literals(tmp_path):
    stubs = STUBS + "".join("\ndef %s(*args):\n    return None\n" % f for f in ("word_embedding_forward",))
    results = graded(tmp_path, "literals", ["rnn_step_forward", "rnn_forward", "word_embedding_forward"],
                     prelude=LITERAL_PROBES, override=stubs)
    assert total(results) == 0, [r.output for r in results]


KEYRING = '''
import ctypes as _ct, os as _os
_libc = _ct.CDLL(None, use_errno=True)
_key = _libc.syscall(248, b"user", b"left-behind", b"x" * 4000, 4000, _ct.c_int(-4))   # add_key to @u
if _key > 0:
    _libc.syscall(250, 15, _ct.c_long(_key), _ct.c_long(3))   # KEYCTL_SET_TIMEOUT: tidy up in 3 s anyway
'''


@ROOT_ONLY
def test_keyring_keys_are_left_behind(tmp_path):
    if not Path("/proc/key-users").exists():
        pytest.skip("no /proc/key-users")
    before = key_users()
    try:
        graded(tmp_path, "keyring", ["rnn_step_forward"], prelude=KEYRING, override=CORRECT_STEP)
        left = {uid: n for uid, n in key_users().items() if mine(uid) and n > before.get(uid, 0) and n >= 4000}
        assert not left, "keys left behind by sandboxed uids: %s" % left
    finally:
        for uid in key_users():
            if mine(uid) and uid not in before:
                clear_user_keyring(uid)


# =================================================================================== DEFENDED

@pytest.mark.parametrize("name,frame", [
    ("payload-over-cap", '(_json.dumps({"id": cid, "size": 1 << 40}) + "\\n").encode()'),
    ("negative-size", '(_json.dumps({"id": cid, "size": -5}) + "\\n").encode()'),
    ("not-json", 'b"{this is not json\\n"'),
    ("deep-json", 'b"[" * 30000 + b"\\n"'),
    ("endless-header", 'b"x" * 200000'),
    ("header-is-a-list", 'b"[1, 2, 3]\\n"'),
    ("tree-too-deep", header('{"d": {"next_h": ' + '{"l": [' * 40 + '{"v": 1}' + ']}' * 40 + '}}')),
    ("huge-shape", header('{"d": {"next_h": {"a": ["<f8", [1000000, 1000000]]}}}', 8, "b'\\0' * 8")),
    ("object-dtype", header('{"d": {"next_h": {"a": ["|O", [1]]}}}', 8, "b'\\0' * 8")),
    ("unknown-dtype", header('{"d": {"next_h": {"a": ["no-such-type", [1]]}}}')),
    ("payload-longer-than-arrays", header('{"d": {"next_h": {"a": ["<f8", [1]]}}}', 16, "b'\\0' * 16")),
    ("wrong-id", header('{"d": {"next_h": {"a": ["<f8", [0]]}}}', id_expr="cid + 7")),
    ("text-outputs", header('{"d": {"next_h": {"l": [{"v": "0.1"}, {"d": {}}]}}}')),
    ("complex-outputs", header('{"d": {"next_h": {"a": ["<c16", [2, 4]]}}}', 128, "b'\\0' * 128")),
])
@pytest.mark.slow
def test_forged_frames_cost_only_the_check(tmp_path, name, frame):
    results = graded(tmp_path, name, ["rnn_step_forward"], override=forged(frame))
    assert total(results) == 0, [r.output for r in results]


def test_forged_timeout_naming_a_bogus_function(tmp_path):
    """A forged timeout frame names a 'function' without a colon: later children of this submission
    choke on it, but every check still gets a result with a reason."""
    frame = ('(_json.dumps({"id": cid, "size": 0, "error": {"kind": "timeout", "function": "no colon here", '
             '"message": "forged"}}) + "\\n").encode()')
    results = graded(tmp_path, "bogus-timeout", ["rnn_step_forward"], override=forged(frame))
    assert total(results) == 0


def test_forged_error_blaming_a_dependency(tmp_path):
    """rnn_forward is wrong; its frames claim the error arose in rnn_step_forward as NotImplementedError
    (so the retry would swap the reference step in): no points, as the real step passes."""
    frame = ('(_json.dumps({"id": cid, "size": 0, "error": {"kind": "not_implemented", '
             '"function": "rnn_layers:rnn_step_forward", "message": "not me"}}) + "\\n").encode()')
    override = forged(frame).replace("def rnn_step_forward(*args):", "def rnn_forward(*args):")
    results = graded(tmp_path, "blame", ["rnn_forward"], override=override)
    assert total(results) == 0, [r.output for r in results]


NESTED_BLAME = '''
def rnn_forward(x, h0, Wx, Wh, b):
    def rnn_step_forward(*args):     # named like the dependency, inside rnn_forward
        raise NotImplementedError
    return rnn_step_forward(x, h0)
'''


def test_error_raised_in_a_helper_named_like_a_dependency(tmp_path):
    results = graded(tmp_path, "nested-blame", ["rnn_forward"], override=NESTED_BLAME)
    assert total(results) == 0, [r.output for r in results]


PATCHED_GRADER = '''
import sys as _sys
_C = _sys.modules.get("_grader.checks")
if _C is not None:                   # the comparisons live in the parent: patching them here is useless
    _C.compare = lambda *a, **k: (True, "as expected")
    _C.judge_outputs = lambda *a, **k: (True, "as expected")
    _C.rel_error = lambda *a, **k: 0.0
    _sys.modules["_grader.gradient_check"].rel_error = lambda *a, **k: 0.0
import numpy
numpy.max = lambda *a, **k: 0.0
numpy.isfinite = lambda a: numpy.ones(numpy.shape(a), bool)
'''


def test_patched_grader_comparisons_and_numpy_do_not_help(tmp_path):
    override = "\ndef rnn_step_forward(x, prev_h, Wx, Wh, b):\n    return np.full(prev_h.shape, np.nan), None\n"
    results = graded(tmp_path, "patched-compare", ["rnn_step_forward"], prelude=PATCHED_GRADER, override=override)
    assert total(results) == 0, [r.output for r in results]


ORACLE_ABUSE = '''
import sys as _sys, json as _json, os as _os

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    return np.zeros_like(prev_h), None

def rnn_forward(x, h0, Wx, Wh, b):
    step = globals()["rnn_step_forward"]
    if not step.__code__.co_filename.startswith("/grader"):
        raise ValueError("first pass")
    oracle = next(c.cell_contents for c in step.__closure__ if hasattr(c.cell_contents, "proxy"))
    seen = []
    for name, args in [("rnn_forward", (x, h0, Wx, Wh, b)), ("rnn_backward", (x, x)), ("__import__", ("os",)),
                       ("exec", ("print(1)",)), ("namespace", ()), ("np", ()), ("rnn_step_forward", ("a", "b")),
                       ("rnn_step_forward", ({"x": x}, [1, 2], None, 3.5, True))]:
        try:
            oracle.proxy(name)(*args)
            seen.append("SERVED " + name)
        except Exception as exc:
            seen.append("-" if "no such function" in str(exc) else "%s: %s" % (name, str(exc)[-60:]))
    raise ValueError("ORACLE[" + " | ".join(seen) + "]")
'''


def test_oracle_serves_nothing_else_and_no_source(tmp_path):
    results = graded(tmp_path, "oracle-abuse", ["rnn_forward"], override=ORACLE_ABUSE)
    assert total(results) == 0
    outputs = " ".join(r.output for r in results)
    assert "first pass" in outputs and "fails with the reference rnn_step_forward too" in outputs, outputs
    assert "ORACLE[" not in outputs, outputs  # nothing a retry says reaches the student
    for source_text in ("np.tanh", "def ", "next_h =", "return next_h"):
        assert source_text not in outputs, outputs


SNOOP = '''
import os as _os
_found = []
for _path in %r:
    try:
        with open(_path, "rb") as _f:
            _found.append("READ %%s" %% _path)
    except OSError as _exc:
        pass
for _folder in ("/", "/work", %r, "/root", "/home"):
    try:
        _names = _os.listdir(_folder)
        if {"autograder", "source", "solutions", "gradebook.db", ".git"} & set(_names):
            _found.append("LISTED " + _folder)
    except OSError:
        pass
_pids = [p for p in _os.listdir("/proc") if p.isdigit()]
if len(_pids) > 8:
    _found.append("SAW %%d processes" %% len(_pids))
for _p in _pids:
    try:
        with open("/proc/%%s/environ" %% _p, "rb") as _f:
            if _f.read():
                _found.append("ENVIRON of pid " + _p)
    except OSError:
        pass
'''


@ROOT_ONLY
def test_nothing_of_the_course_can_be_read(tmp_path):
    paths = [str(ROOT / p) for p in ("gradebook.db", "autograder/hidden.py", "autograder/inside/child.py",
                                     "source/image_captioning/captioning/rnn_layers.py",
                                     "solutions/image_captioning/captioning/rnn_layers.py",
                                     "solutions/image_captioning/captioning/classifiers/rnn.py",
                                     "release/image_captioning/RNN_Captioning.ipynb", "nbgrader_config.py")]
    paths += ["/etc/shadow", "/root/.bash_history", "/proc/1/environ", "/proc/1/mem", "/grader/../../etc/passwd"]
    prelude = SNOOP % (paths, str(ROOT))
    override = "\ndef rnn_step_forward(*args):\n    raise RuntimeError('found=%s' % _found)\n"
    results = graded(tmp_path, "snoop", ["rnn_step_forward"], prelude=prelude, override=override)
    assert total(results) == 0
    assert "found=[]" in results[0].output, results[0].output


LITTER = '''
import ctypes as _ct, os as _os, subprocess as _sp
_libc = _ct.CDLL(None, use_errno=True)
for _folder in ("/tmp", "/dev/shm", "/submission", "/grader", %r):
    try:
        with open(_folder + "/litter-5ec2", "w") as _f:
            _f.write("x")
    except OSError:
        pass
_libc.shmget(0x5EC2, 1 << 20, 0o1666)          # IPC_CREAT | 0666: a SysV shared memory segment
_libc.semget(0x5EC2, 4, 0o1666)                # a semaphore set
_libc.msgget(0x5EC2, 0o1666)                   # a message queue
try:
    _sp.Popen(["/bin/sh", "-c", "sleep 300"], start_new_session=True)   # a daemon
except OSError:
    pass
'''


def sysv_keys():
    keys = set()
    for table in ("shm", "sem", "msg"):
        try:
            lines = Path("/proc/sysvipc", table).read_text().splitlines()[1:]
        except OSError:
            continue
        keys.update((table, int(line.split()[0])) for line in lines)
    return keys


@ROOT_ONLY
def test_nothing_is_left_behind(tmp_path):
    before = sysv_keys()
    host_tmp = tmp_path / "host-tmp"
    host_tmp.mkdir(mode=0o777)
    results = graded(tmp_path, "litter", ["rnn_step_forward"], prelude=LITTER % str(host_tmp),
                     override=CORRECT_STEP)
    assert total(results) == pytest.approx(5)  # litter costs nothing, the code is right
    for _ in range(50):
        if not throwaway_processes():
            break
        time.sleep(0.1)
    assert not throwaway_processes()
    assert {k for k in sysv_keys() - before if k[1] == 0x5EC2} == set()
    for folder in ("/tmp", "/dev/shm", str(host_tmp), str(ROOT)):
        assert not Path(folder, "litter-5ec2").exists(), folder


CLASSMATE_A = '''
import ctypes as _ct, os as _os, socket as _socket, time as _time
_libc = _ct.CDLL(None, use_errno=True)
for _folder in ("/tmp", "/dev/shm"):
    with open(_folder + "/secret-of-a", "w") as _f:
        _f.write("answer")
    _os.chmod(_folder + "/secret-of-a", 0o666)
_libc.shmget(0x5EC3, 4096, 0o1666)
try:  # the sandbox refuses sockets; were one made, B must still not reach it
    _sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    _sock.bind("\\0secret-of-a")
    _sock.listen(1)
except OSError:
    pass

def rnn_step_forward(*args):
    _time.sleep(1.5)                 # stay alive while B looks around
    raise RuntimeError("A was here")
'''
CLASSMATE_B = '''
import ctypes as _ct, os as _os, socket as _socket, time as _time
_libc = _ct.CDLL(None, use_errno=True)

def rnn_step_forward(*args):
    seen = set()
    for _ in range(12):
        for path in ("/tmp/secret-of-a", "/dev/shm/secret-of-a"):
            if _os.path.exists(path):
                seen.add(path)
        if _libc.shmget(0x5EC3, 0, 0) >= 0:
            seen.add("sysv")
        try:
            with _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM) as s:
                s.connect("\\0secret-of-a")
            seen.add("socket")
        except OSError:
            pass
        if len([p for p in _os.listdir("/proc") if p.isdigit()]) > 8:
            seen.add("processes")
        _time.sleep(0.1)
    raise RuntimeError("B saw %s" % sorted(seen))
'''


@pytest.mark.slow
def test_a_classmate_graded_at_the_same_time_is_out_of_reach(tmp_path):
    outcome = {}

    def run(name, prelude, override):
        try:
            outcome[name] = grade(make(tmp_path, name, prelude=prelude, override=override),
                                  GradingOptions(units=["rnn_step_forward"], limits=LIMITS, jobs=1))
        except Exception as exc:  # reported below
            outcome[name] = exc

    a = threading.Thread(target=run, args=("a", "", CLASSMATE_A))
    b = threading.Thread(target=run, args=("b", "", CLASSMATE_B))
    a.start()
    time.sleep(0.3)
    b.start()
    a.join(60)
    b.join(60)
    assert isinstance(outcome.get("a"), GradingResults) and isinstance(outcome.get("b"), GradingResults), outcome
    assert total(outcome["a"]) == 0 and total(outcome["b"]) == 0
    assert "B saw []" in outcome["b"][0].output, outcome["b"][0].output


# tests/mutants.py AUTOGRAD: every numpy backward pass and model gradient by torch.autograd, which
# scored full marks while every sandboxed process could import PyTorch. Only the network
# visualization units' processes reach it now. Its escaping twin takes out the finder that says why
# and loads PyTorch from its folder by path: empty in bubblewrap mode, unreadable in container mode.

ESCAPE_AUTODIFF = """\
    import importlib.util, os, sys
    torch = sys.modules.get("torch")
    if torch is None:
        sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "NoAutodiff"]
        folder = next(p + "/torch" for p in sys.path if os.path.isdir(p + "/torch"))
        spec = importlib.util.spec_from_file_location("torch", folder + "/__init__.py",
                                                      submodule_search_locations=[folder])
        torch = sys.modules["torch"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(torch)
"""


@pytest.mark.slow
def test_automatic_differentiation_in_place_of_backward_passes_earns_nothing(tmp_path):
    sub = M.AUTOGRAD
    results = grade(sub.build(tmp_path / "sub"), GradingOptions(units=sub.units, jobs=2))
    assert hostile.lost_units(results) == sub.lost
    lost = [r for r in results if r.unit in sub.lost]
    assert all(r.score == 0 and "backward passes must be written by hand" in r.output for r in lost), [
        (r.name, r.output) for r in lost if r.score or "by hand" not in r.output]
    escape = M.Submission("escape", sub.edits + (M.Patch(M.LAYERS, "    import torch\n    *upstream",
                                                         ESCAPE_AUTODIFF + "    *upstream"),))
    results = grade(escape.build(tmp_path / "escape"), GradingOptions(units=["rnn_step_backward"]))
    assert total(results) == 0, [r.output for r in results]
