"""What a hostile child can send back to the grader, and what it costs the grader.

Each submission is the answer key with code run at import (tests/hostile), graded under the
sandbox's own limits:
- it reads whatever grading material its process holds and sends it back through every channel
  (exception messages, warnings, prints): nothing of autograder/hidden.py reaches results.json or
  the terminal table, and no line of its text starts a line of its own there;
- it answers every check with the largest frame the grader takes: the grader process stays under
  200 MB of resident memory;
- it answers with a malformed frame and exits: its grade takes less than twice the untouched
  release's.
"""
import json
import re
import subprocess
import sys
import time

import pytest

from autograder import report
from autograder.grade import grade
from autograder.results import GradingOptions
from autograder.units import BY_NAME, UNITS
from tests import mutants as M
from tests.hostile import ROOT, make, total

FAST_UNITS = [u.name for u in UNITS if not u.training]
# The numpy units: the memory probe measures what answers cost the grader, not PyTorch's own size
NUMPY_UNITS = [u for u in FAST_UNITS if not BY_NAME[u].function.startswith("net_visualization")]

# Every layer call sends back what it finds: the child's request (hidden check source and inputs,
# wherever they are) in pieces, as warnings, as the exception's message and on stdout, with line
# breaks and forged score lines around it.
LEAK = r'''
import os as _os, sys as _sys
def _material():
    found, f = [], _sys._getframe()
    while f is not None:
        for value in f.f_locals.values():
            if isinstance(value, dict) and isinstance(value.get("sources"), dict):
                found[:0] = [value["sources"].get("hidden", ""), repr(value)]
        f = f.f_back
    for name in ("_grader.hidden", "hidden"):
        module = _sys.modules.get(name)
        if module is not None:
            found.append(repr(vars(module)))
    return "".join(found)
_TEXT = _material()
_C = _sys.modules.get("_grader.checks")
_next = [0]
if _C is not None:
    def _leaky_call(self, name, *args):
        start = _next[0]
        _next[0] += 2000
        piece = _TEXT[start:start + 2000]
        self.warnings.extend(["\n  5.00 / 5.00 FORGED-LINE"] + [piece[i:i + 300] for i in range(0, 2000, 300)])
        print(piece)
        raise ValueError("\n  5.00 / 5.00  FORGED-LINE\r\nTOTAL 160.00 / 160.00 FORGED-LINE\x1b[2K\n" + piece)
    _C.Impl.call = _leaky_call
'''


def test_hidden_checks_never_come_back(tmp_path):
    hidden_py = (ROOT / "autograder" / "hidden.py").read_text()
    lines = {line.strip() for line in hidden_py.splitlines() if len(line.strip()) >= 30}
    units = ["rnn_step_forward", "rnn_step_backward", "word_embedding_forward", "positional_encoding"]
    results = grade(make(tmp_path, "leak", prelude=LEAK), GradingOptions(units=units, jobs=1))
    document = json.dumps(results.to_gradescope())
    table = report.table(results)
    assert total(results) == 0
    leaked = [line for line in lines if line in document or line in table or json.dumps(line)[1:-1] in document]
    assert not leaked, "%d lines of hidden.py came back, e.g. %r" % (len(leaked), leaked[:3])
    outputs = table.splitlines() + [line for r in results for line in report.clean_text(r.output).split("\n")]
    forged = [line for line in outputs if "FORGED-LINE" in line]
    assert forged, "the forged text is not even shown: the test proves nothing"
    assert all("FAIL: " in line for line in forged), "a line of its own: %r" % next(
        line for line in forged if "FAIL: " not in line)


# Every answer is the largest frame the grader takes: its check's cap when the request names one
# (an int after the time limit), else the protocol's largest payload.
MAXIMAL = r'''
import json as _json, os as _os, sys as _sys
_F = _sys.modules.get("frames")
if _F is not None:
    _write = _F.write_frame
    def _maximal(fd, header, value=None):
        if "id" not in header:
            return _write(fd, header, value)
        f = _sys._getframe()
        while "request" not in f.f_locals:
            f = f.f_back
        request = f.f_locals["request"]
        entry = next(e for e in request["checks"] if e[0] == header["id"])
        size = min(entry[4] if type(entry[4]) is int else request["max_payload"], request["max_payload"]) // 8 * 8
        tree = {"d": {"out": {"a": ["<f8", [size // 8]]}}}
        _os.write(fd, (_json.dumps({"id": header["id"], "tree": tree, "size": size}) + "\n").encode())
        view = memoryview(bytes(size))
        while view:
            view = view[_os.write(fd, view):]
    _F.write_frame = _maximal
'''
PEAK_PROBE = r'''
import resource, sys, tempfile
hard = resource.getrlimit(resource.RLIMIT_AS)[1]
cap = 4 << 30 if hard == resource.RLIM_INFINITY else min(4 << 30, hard)
resource.setrlimit(resource.RLIMIT_AS, (cap, hard))  # a grader holding every answer would take ~9 GB
from autograder.grade import grade
from autograder.results import GradingOptions
from tests.hostile import make
with tempfile.TemporaryDirectory() as tmp:
    results = grade(make(tmp, "maximal", prelude=%(prelude)r), GradingOptions(units=%(units)r, jobs=2))
# VmHWM, this process's own peak: getrusage's ru_maxrss keeps the forking process's (pytest's) across exec
peak_kb = int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
print("PEAK_MB=%%d SCORE=%%s" %% (peak_kb >> 10, sum(r.score for r in results)))
'''


@pytest.mark.slow
def test_grader_memory_stays_bounded_against_maximal_answers():
    probe = subprocess.run([sys.executable, "-c", PEAK_PROBE % {"root": str(ROOT), "prelude": MAXIMAL,
                                                                "units": NUMPY_UNITS}],
                           capture_output=True, text=True, timeout=600, cwd=ROOT)
    found = re.search(r"PEAK_MB=(\d+) SCORE=(\S+)", probe.stdout)
    assert found, probe.stdout[-2000:] + probe.stderr[-2000:]
    assert float(found.group(2)) == 0
    assert int(found.group(1)) < 200, "the grader's peak resident memory was %s MB" % found.group(1)


MALFORMED = r'''
import os as _os, sys as _sys
_F = _sys.modules.get("frames")
if _F is not None:
    _write = _F.write_frame
    def _malformed(fd, header, value=None):
        if "id" not in header:
            return _write(fd, header, value)
        _os.write(fd, b"{this is not a frame\n")
        _os._exit(0)
    _F.write_frame = _malformed
'''


@pytest.mark.slow
def test_malformed_answers_cost_less_than_twice_the_release(tmp_path):
    started = time.monotonic()
    stubs = grade(M.stub_submission(tmp_path / "stub"), GradingOptions(units=FAST_UNITS, jobs=2))
    stub_seconds = time.monotonic() - started
    started = time.monotonic()
    results = grade(make(tmp_path, "malformed", prelude=MALFORMED), GradingOptions(units=FAST_UNITS, jobs=2))
    seconds = time.monotonic() - started
    assert total(stubs) == 0 and total(results) == 0
    assert any("malformed answer" in r.output for r in results), results[0].output
    assert seconds < 2 * stub_seconds, "%.1f s against the release's %.1f s" % (seconds, stub_seconds)


def test_an_honest_answer_over_its_cap_costs_only_its_check(tmp_path):
    """A unit function returning far more than a check's reference (128 MiB) fails that check with
    a reason, like any wrong answer: the public check (which keeps two rows) has its shape wrong."""
    override = "\ndef rnn_step_forward(x, prev_h, Wx, Wh, b):\n    return np.zeros((4096, 4096)), None\n"
    results = grade(make(tmp_path, "big", override=override), GradingOptions(units=["rnn_step_forward"], jobs=1))
    assert total(results) == 0
    outputs = [r.output for r in results]
    assert "has shape (2, 4096)" in outputs[0] and all("this check allows" in o for o in outputs[1:]), outputs


def test_the_fixed_warning_still_reaches_the_student(tmp_path):
    """The one warning a child may send (an input changed in place) is shown; it costs nothing."""
    override = ("\ndef rnn_step_forward(x, prev_h, Wx, Wh, b):\n    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)\n"
                "    x[...] = 0\n    return next_h, None\n")
    results = grade(make(tmp_path, "in-place", override=override), GradingOptions(units=["rnn_step_forward"], jobs=1))
    assert total(results) == 5
    assert all(r.output.endswith("\nwarning: rnn_step_forward changed its input argument 1 in place")
               for r in results), [r.output for r in results]
