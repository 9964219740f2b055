"""Hostile submissions: each must get a right grade (no undeserved points), a one-line reason, and
leave no process behind. Every grade runs under short Limits, so the whole file takes ~2 minutes.

The submissions graded here only replace rnn_step_forward (3 checks, 5 points); other units use
the answer key and are not graded, to keep each case cheap.
"""
import builtins
import json
import os
import re
import zipfile

import pytest

from autograder.course import REFERENCE_PACKAGE
from autograder.front.batch import run_batch
from autograder.grade import grade
from autograder.intake import SubmissionError
from autograder.results import GradingOptions
from autograder.sandbox import GiB, Limits
from autograder.units import RNN_NB
from tests.hostile import BUGGY_STEP, CORRECT_STEP, ROOT, make, processes, throwaway_processes

UNIT = ["rnn_step_forward"]
LIMITS = Limits(check_seconds=2, import_seconds=5, train_seconds=5, memory_bytes=1 * GiB, processes=32,
                submission_seconds=12, output_bytes=16 * 1024)
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="uid/mount isolation needs the grader to run as root")


def graded(tmp_path, name, units=UNIT, limits=LIMITS, **code):
    results = grade(make(tmp_path, name, **code), GradingOptions(units=units, limits=limits, jobs=1))
    assert results and all(len(r.output.splitlines()[0]) < 700 for r in results)
    return results


def total(results):
    return sum(r.score for r in results)


def assert_zero(results, *phrases):
    assert total(results) == 0, [r.output for r in results]
    for r in results:
        assert r.output.startswith("FAIL: ")
        assert any(p in r.output for p in phrases), r.output


def test_correct_submission_gets_full_points(tmp_path):
    results = graded(tmp_path, "ok", override=CORRECT_STEP)
    assert total(results) == pytest.approx(5)


def test_infinite_loop(tmp_path):
    results = graded(tmp_path, "loop", override="\ndef rnn_step_forward(*args):\n    while True:\n        pass\n")
    assert_zero(results, "time limit", "did not finish")
    assert re.search(r"time limit: this check took longer than [\d.]+ s \(in rnn_step_forward\)", results[0].output)


def test_loop_that_swallows_interrupts(tmp_path):
    override = """
    import signal, time
    def rnn_step_forward(*args):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        while True:
            try:
                time.sleep(10)
            except BaseException:
                pass
    """
    assert_zero(graded(tmp_path, "stubborn", override=override), "time limit", "did not finish")


@pytest.mark.slow
def test_whole_submission_budget(tmp_path):
    """Each check is slow but within its own limit: the submission's budget stops the grade."""
    limits = Limits(**{**LIMITS.__dict__, "check_seconds": 3, "submission_seconds": 4})
    results = graded(tmp_path, "slow", limits=limits,
                     override="\nimport time\ndef rnn_step_forward(*args):\n    time.sleep(2.5)\n")
    assert_zero(results, "time limit", "TypeError")
    assert any("whole submission took longer than 4 s" in r.output for r in results)


def test_ten_gigabyte_allocation(tmp_path):
    override = "\ndef rnn_step_forward(*args):\n    return np.ones(10 * 2**30 // 8), None\n"
    assert_zero(graded(tmp_path, "memory", override=override), "MemoryError", "out of memory")


@ROOT_ONLY
def test_fork_bomb_is_stopped_by_nproc_and_cleaned_up(tmp_path):
    # Bounded even if the limit were broken: at most 200 forks, each child sleeps 60 s then exits.
    override = """
    import os, time
    def rnn_step_forward(*args):
        n, error = 0, None
        while n < 200:
            try:
                pid = os.fork()
            except OSError as exc:
                error = exc
                break
            if pid == 0:
                os.setsid()
                time.sleep(60)
                os._exit(0)
            n += 1
        raise RuntimeError("uid=%d forks=%d stopped by %s" % (os.getuid(), n, error))
    """
    results = graded(tmp_path, "bomb", override=override)
    assert_zero(results, "stopped by")
    for r in results:
        uid, forks = map(int, re.search(r"uid=(\d+) forks=(\d+)", r.output).groups())
        assert forks < LIMITS.processes, r.output
        assert "Resource temporarily unavailable" in r.output
        assert processes(lambda u: u == uid) == [], "processes of the bomb survived"


@ROOT_ONLY
def test_setsid_daemon_is_killed(tmp_path):
    prelude = """
    import os, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(120)
        os._exit(0)
    """
    results = graded(tmp_path, "daemon", prelude=prelude, override=CORRECT_STEP)
    assert total(results) == pytest.approx(5)  # the answers are right: the daemon costs nothing
    assert throwaway_processes() == []  # the setsid'd grandchild is gone too


def test_hundred_megabytes_of_prints(tmp_path):
    prelude = """
    import os, sys
    line = "x" * 999 + "\\n"
    for _ in range(100 * 1024):
        sys.stdout.write(line)
    sys.stdout.flush()
    os._exit(3)
    """
    results = graded(tmp_path, "chatty", prelude=prelude)
    assert_zero(results, "exited with code 3")
    assert all(len(r.output) < 1000 for r in results)


def test_prints_do_not_cost_points(tmp_path):
    override = CORRECT_STEP.replace("    return", "    print('debug ' * 10000)\n    return")
    assert total(graded(tmp_path, "debug-prints", override=override)) == pytest.approx(5)


REFERRED = "could not import captioning/rnn_layers.py (why: see the test "  # the reason is told once per file


def test_sys_exit_at_import(tmp_path):
    results = graded(tmp_path, "exit", prelude="import sys\nsys.exit(0)\n")
    assert_zero(results, "SystemExit", REFERRED)
    assert "SystemExit" in results[0].output


def test_os_exit_in_function(tmp_path):
    override = "\nimport os\ndef rnn_step_forward(*args):\n    os._exit(0)\n"
    assert_zero(graded(tmp_path, "os_exit", override=override), "exited with code 0")


def test_monkeypatched_numpy_comparisons_do_not_help(tmp_path):
    prelude = """
    import numpy, numpy.testing
    numpy.allclose = lambda *a, **k: True
    numpy.isclose = lambda *a, **k: True
    numpy.testing.assert_allclose = lambda *a, **k: None
    numpy.testing.assert_array_equal = lambda *a, **k: None
    """
    override = "\ndef rnn_step_forward(x, prev_h, Wx, Wh, b):\n    return np.zeros_like(prev_h), None\n"
    assert_zero(graded(tmp_path, "patched", prelude=prelude, override=override), "relative error", "expected")


def test_overwriting_results_files_fails(tmp_path):
    results_file = tmp_path / "out" / "results.json"
    results_file.parent.mkdir()
    results_file.write_text('{"score": 0}')
    targets = [str(results_file), "/autograder/results/results.json", str(ROOT / "grades.csv")]
    prelude = """
    outcomes = []
    for target in %r:
        try:
            with open(target, "w") as f:
                f.write('{"score": 100}')
            outcomes.append("WROTE " + target)
        except OSError as exc:
            outcomes.append("%%s: %%s" %% (target, exc.strerror))
    """ % targets
    override = "\ndef rnn_step_forward(*args):\n    raise RuntimeError(' | '.join(outcomes))\n"
    results = graded(tmp_path, "overwrite", prelude=prelude, override=override)
    assert_zero(results, "RuntimeError")
    assert "WROTE" not in results[0].output, results[0].output
    assert results_file.read_text() == '{"score": 0}'
    assert not (ROOT / "grades.csv").exists()


@ROOT_ONLY
def test_grader_files_cannot_be_read(tmp_path):
    prelude = """
    import os
    found = []
    paths = [%r, %r, %r, %r]
    for path in paths:
        try:
            with open(path) as f:
                found.append("READ %%s (%%d chars)" %% (path, len(f.read())))
        except OSError as exc:
            found.append("%%s: %%s" %% (path, exc.strerror))
    here = os.path.dirname(os.path.abspath(__file__))
    for _ in range(4):
        here = os.path.dirname(here)
        try:
            names = os.listdir(here)
            if "hidden.py" in names or "autograder" in names or "solutions" in names:
                found.append("LISTED grader files in " + here)
        except OSError:
            pass
    """ % (str(ROOT / "autograder" / "hidden.py"), str(REFERENCE_PACKAGE / "rnn_layers.py"),
           str(ROOT / "solutions"), str(ROOT / ".git" / "HEAD"))
    override = "\ndef rnn_step_forward(*args):\n    raise RuntimeError(' | '.join(found))\n"
    results = graded(tmp_path, "snoop", prelude=prelude, override=override)
    assert_zero(results, "RuntimeError")
    assert "READ" not in results[0].output and "LISTED" not in results[0].output, results[0].output


def test_reference_is_not_in_the_child(tmp_path):
    prelude = "import sys\nleaked = sorted(m for m in sys.modules if m.startswith('_grader.ref'))\n"
    override = "\ndef rnn_step_forward(*args):\n    raise RuntimeError('leaked=%s' % leaked)\n"
    results = graded(tmp_path, "leak", prelude=prelude, override=override)
    assert all("leaked=[]" in r.output for r in results), results[0].output


def test_only_the_result_pipe_is_inherited(tmp_path):
    override = ("\nimport os\ndef rnn_step_forward(*args):\n"
                "    raise RuntimeError('fds=%s' % sorted(int(f) for f in os.listdir('/proc/self/fd')))\n")
    results = graded(tmp_path, "fds", override=override)
    fds = json.loads(re.search(r"fds=(\[[^\]]*\])", results[0].output).group(1))
    assert fds[:3] == [0, 1, 2] and len(fds) <= 5, fds  # stdio, the result pipe, listdir's own fd


def test_missing_third_party_package(tmp_path):
    results = graded(tmp_path, "torch", prelude="import torch_is_not_installed_here\n")
    assert_zero(results, "ModuleNotFoundError", REFERRED)
    assert "ModuleNotFoundError" in results[0].output


@pytest.mark.parametrize("name,body", [
    ("none", "return None"),
    ("wrong-shape", "return np.zeros((1, 1)), None"),
    ("nan", "return np.full(prev_h.shape, np.nan), None"),
    ("object", "return [object()], None"),
])
def test_bad_return_values(tmp_path, name, body):
    override = "\ndef rnn_step_forward(x, prev_h, Wx, Wh, b):\n    %s\n" % body
    results = graded(tmp_path, name, override=override)
    assert total(results) == 0, [r.output for r in results]


def test_buggy_submission(tmp_path):
    assert_zero(graded(tmp_path, "buggy", override=BUGGY_STEP), "relative error", "expected")


def test_syntax_error(tmp_path):
    results = graded(tmp_path, "syntax", override="\ndef rnn_step_forward(:\n")
    assert_zero(results, "SyntaxError", REFERRED)
    assert re.search(r"SyntaxError: .* \(captioning/rnn_layers.py, line \d+, column \d+\)", results[0].output)


HALF_WRITTEN = """
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    if len(x) == 1:
        raise NotImplementedError  # the one-example case is left for later
    return np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b), None
"""


@pytest.mark.parametrize("name, code", [
    ("deep", "\n_x = " + "+".join(["1"] * 300_000) + "\n"),  # overflows the parser's recursion
    pytest.param("wide", "\n_x = lambda: [" + ",".join(["a.b"] * 400_000) + "]\n",  # 2 MB of source, ~1 GB as a tree
                 marks=pytest.mark.slow),
])
def test_source_too_big_for_a_tree_is_compiled_only_in_the_sandbox(tmp_path, monkeypatch, name, code):
    """The grader's process never builds a tree of a submission's file (autograder/syntax.py): a
    stub's line is read token by token, a compile error's place comes from the sandbox."""
    compiled, real_compile = [], builtins.compile

    def spy(source, *args, **kwargs):
        if "_x = " in str(source)[:100_000]:
            compiled.append(args)
        return real_compile(source, *args, **kwargs)
    monkeypatch.setattr(builtins, "compile", spy)
    results = graded(tmp_path, name, prelude=code, override=HALF_WRITTEN)
    assert not compiled
    assert total(results) == 0, [r.output for r in results]
    source = (tmp_path / name / "captioning" / "rnn_layers.py").read_text().split("\n")
    stub_line = 1 + next(n for n, line in enumerate(source) if "left for later" in line)
    said = ("could not import captioning/rnn_layers.py: RecursionError" if name == "deep" else
            "not implemented yet: NotImplementedError (captioning/rnn_layers.py, line %d, in rnn_step_forward)"
            % stub_line)
    assert said in results[0].output, results[0].output
    assert all(r.output.startswith("FAIL: ") and len(r.output) < 2000 for r in results), results


def test_non_utf8_source(tmp_path):
    results = graded(tmp_path, "latin1", raw="# caf\xe9\nimport numpy as np\n".encode("latin-1"))
    assert_zero(results, "not UTF-8", REFERRED)
    assert "not UTF-8" in results[0].output


def test_broken_notebook_is_ignored(tmp_path):
    results = graded(tmp_path, "nb", override=CORRECT_STEP,
                     extra={RNN_NB: b"{this is not json", "LSTM_Captioning.ipynb": b"\xff\xfe"})
    assert total(results) == pytest.approx(5)


def test_empty_zip_and_no_package(tmp_path):
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(SubmissionError, match="no captioning/ package"):
        grade(empty, GradingOptions(units=UNIT, limits=LIMITS))
    (tmp_path / "nothing").mkdir()
    with pytest.raises(SubmissionError, match="no captioning/ package"):
        grade(tmp_path / "nothing", GradingOptions(units=UNIT, limits=LIMITS))
    (tmp_path / "garbage.zip").write_bytes(b"not a zip")
    with pytest.raises(SubmissionError, match="not a readable zip"):
        grade(tmp_path / "garbage.zip", GradingOptions(units=UNIT, limits=LIMITS))


HOSTILE_CLASS = {
    "loop": dict(override="\ndef rnn_step_forward(*args):\n    while True:\n        pass\n"),
    "exit": dict(prelude="import sys\nsys.exit(0)\n"),
    "os_exit": dict(override="\nimport os\ndef rnn_step_forward(*args):\n    os._exit(1)\n"),
    "memory": dict(override="\ndef rnn_step_forward(*args):\n    return np.ones(10 * 2**30 // 8), None\n"),
    "bomb": dict(override="\nimport os, time\ndef rnn_step_forward(*args):\n    for _ in range(100):\n"
                          "        if os.fork() == 0:\n            time.sleep(30)\n            os._exit(0)\n"),
    "syntax": dict(override="\ndef rnn_step_forward(:\n"),
    "latin1": dict(raw=b"# caf\xe9\n"),
    "none": dict(override="\ndef rnn_step_forward(*args):\n    return None\n"),
}


@pytest.mark.slow
def test_generated_class_through_batch(tmp_path):
    """40 submissions (24 correct, 8 buggy, 8 hostile + 2 ungradable), 2 workers, one unit."""
    subs, out = tmp_path / "subs", tmp_path / "grades"
    subs.mkdir()
    expected = {}
    for n in range(24):
        make(subs, "ok%02d" % n, override=CORRECT_STEP)
        expected["ok%02d" % n] = 5.0
    for n in range(8):
        make(subs, "buggy%02d" % n, override=BUGGY_STEP)
        expected["buggy%02d" % n] = 0.0
    for name, code in HOSTILE_CLASS.items():
        make(subs, "x-" + name, **code)
        expected["x-" + name] = 0.0
    zipfile.ZipFile(subs / "x-emptyzip.zip", "w").close()
    (subs / "x-nopackage").mkdir()
    (subs / "x-nopackage" / "notes.txt").write_text("oops")
    expected.update({"x-emptyzip": 0.0, "x-nopackage": 0.0})
    assert len(expected) >= 40 - 1

    limits = Limits(**{**LIMITS.__dict__, "submission_seconds": 6})
    documents = run_batch(subs, out, GradingOptions(units=UNIT, limits=limits), workers=2, progress=False)
    assert {s: r.total for s, r in documents.items()} == pytest.approx(expected)
    for student in expected:
        document = json.loads((out / student / "results.json").read_text())
        assert document["score"] == pytest.approx(expected[student])
    for student in ("x-emptyzip", "x-nopackage"):
        assert "no captioning/ package" in documents[student].reason
    rows = (out / "grades.csv").read_text().splitlines()
    assert rows[0].startswith("student,total,rnn_step_forward,") and len(rows) == len(expected) + 1
    assert "data:image/png;base64," in (out / "summary.html").read_text()
    assert throwaway_processes() == [] or os.geteuid() != 0
