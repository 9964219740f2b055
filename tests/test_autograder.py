"""The autograder's own tests: the answer key, the untouched release and the command line (the
corpus of mistakes and correct variants is tests/test_corpus.py).

The two full grades (the answer key through the CLI, the untouched release) run in the background
while the fast tests are checked.
"""
import dataclasses
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder.course import RELEASE_DIR, ROOT
from autograder.diagnosis import HINT_PREFIX
from autograder.front import cli
from autograder.grade import SandboxRunner, grade
from autograder.intake import STUDENT_FILES
from autograder.reference import all_checks
from autograder.results import GradingOptions
from autograder.sandbox import Session
from autograder.units import BY_NAME, TOTAL, UNITS
from tests import mutants as M
from tests.hostile import lost_units, zip_folder

CHECKS = list(all_checks().values())
FAST_UNITS = tuple(u.name for u in UNITS if not u.training)
WHERE = re.compile(r"\((captioning/[\w/]+\.py), line (\d+), in (\w+)\)")


# ---------------------------------------------------------------- helpers

def failures(results):
    return "\n".join("  %s -> %s" % (r.name, r.output.replace("\n", " / ")) for r in results
                     if r.score < r.max_score)


def hint_lines(results):
    """{unit: [hint lines in its tests' outputs]} of the units that have any."""
    found = {}
    for r in results:
        for line in r.output.split("\n"):
            if line.startswith(HINT_PREFIX):
                found.setdefault(r.unit, []).append(line)
    return found


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)


def cli_full_grade(submission, results_json):
    proc = run_cli(submission, "--results", results_json)
    return proc, (json.loads(Path(results_json).read_text()) if Path(results_json).is_file() else None)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("autograder")


@pytest.fixture(scope="module")
def slow(workdir):
    """The full grades, started at once in the background: {name: Future}."""
    stub = M.stub_submission(workdir / "stub")
    pool = ThreadPoolExecutor(2)
    futures = {
        "stub_dir": pool.submit(lambda: stub),
        "stub": pool.submit(grade, stub, GradingOptions(jobs=1)),
        "cli": pool.submit(cli_full_grade, M.answer_key(), workdir / "answer_key.json"),
    }
    yield futures
    pool.shutdown(wait=True)


# ---------------------------------------------------------------- 1. answer key and release

def test_answer_key_scores_100_through_the_cli(slow):
    proc, doc = slow["cli"].result()
    assert proc.returncode == 0, proc.stderr
    assert doc is not None, "no results.json written:\n" + proc.stdout[-2000:] + proc.stderr
    bad = [t for t in doc["tests"] if t["score"] != t["max_score"]]
    assert not bad, "the answer key loses points:\n" + "\n".join("%s: %s" % (t["name"], t["output"]) for t in bad)
    assert doc["score"] == pytest.approx(TOTAL) and TOTAL == 175  # RNN, LSTM 105; Transformer 55; visualization 15
    assert {t["name"].split(":")[0] for t in doc["tests"]} == set(BY_NAME)


def test_untouched_release_scores_zero_on_every_unit(slow):
    results = slow["stub"].result()
    assert {r.unit for r in results} == set(BY_NAME)
    earned = {u: got for u, (got, _) in results.by_unit().items() if got > 0}
    assert not earned, "the untouched release earns points: %s\n%s" % (
        earned, "\n".join("  %s -> %s" % (r.name, r.output) for r in results if r.score > 0))


def test_untouched_release_says_not_implemented_with_the_students_file_and_line(slow):
    stub, results = slow["stub_dir"].result(), slow["stub"].result()
    for r in results:
        if r.score > 0:
            continue  # reported by test_untouched_release_scores_zero_on_every_unit
        assert "not implemented" in r.output, r.name + ": " + r.output
        where = WHERE.search(r.output)
        assert where, "%s: no file and line in %r" % (r.name, r.output)
        path, line, function = where.groups()
        source_line = (stub / path).read_text().split("\n")[int(line) - 1]
        assert "raise NotImplementedError" in source_line, (r.name, path, line, source_line)
        assert path in ["captioning/" + f for f in STUDENT_FILES], path


# ---------------------------------------------------------------- 2. no hint where nothing is wrong

def test_the_answer_key_and_the_untouched_release_get_no_hint(slow):
    proc, doc = slow["cli"].result()
    assert doc and not [t for t in doc["tests"] if HINT_PREFIX in t["output"] or t.get("extra_data")]
    assert not hint_lines(slow["stub"].result())


# ---------------------------------------------------------------- 3. command line

def test_results_json_is_gradescope_format(slow):
    proc, doc = slow["cli"].result()
    assert doc is not None, proc.stderr
    assert set(doc) >= {"score", "execution_time", "tests"}
    assert isinstance(doc["execution_time"], (int, float)) and doc["execution_time"] > 0
    assert len(doc["tests"]) == len(CHECKS)
    for t in doc["tests"]:
        assert set(t) >= {"name", "score", "max_score", "output", "visibility"}, t
        unit = t["name"].split(":")[0]
        assert unit in BY_NAME and t["name"].startswith(unit + ": "), t["name"]
        if unit.startswith(("CaptioningRNN", "overfit")) and unit != "CaptioningRNN.beam_search":  # both cells
            assert [cell in t["name"] for cell in ("(rnn)", "(lstm)", "(transformer)")].count(True) == 1, t["name"]
        assert t["visibility"] in ("visible", "after_published", "hidden", "after_due_date")
        assert t["output"]
    visibility = {t["visibility"] for t in doc["tests"]}
    assert "visible" in visibility and visibility - {"visible"}, "public and hidden tests are told apart"
    per_unit = {}
    for t in doc["tests"]:
        unit = t["name"].split(":")[0]
        per_unit[unit] = per_unit.get(unit, 0) + t["max_score"]
    assert per_unit == pytest.approx({u.name: u.points for u in UNITS}, abs=1e-9)  # the shares add up exactly
    assert sum(t["max_score"] for t in doc["tests"]) == pytest.approx(TOTAL, abs=1e-9)
    assert "TOTAL %.2f / %.2f" % (TOTAL, TOTAL) in proc.stdout


def test_cli_public_only_exits_0_whatever_the_score(slow, workdir, monkeypatch, capsys):
    """--public runs only public checks (units restricted here to keep the training out)."""
    stub = slow["stub_dir"].result()
    monkeypatch.setattr(cli, "grade", lambda sub, options: grade(sub, dataclasses.replace(options, units=FAST_UNITS)))
    out = workdir / "public.json"
    assert cli.main([str(stub), "--results", str(out), "--public"]) == 0
    doc = json.loads(out.read_text())
    assert doc["score"] == 0
    public = sorted((c for c in CHECKS if c.public and c.unit in FAST_UNITS), key=lambda c: FAST_UNITS.index(c.unit))
    assert [t["name"] for t in doc["tests"]] == [c.title for c in public]
    assert all(t["visibility"] == "visible" for t in doc["tests"])
    assert "TOTAL 0.00" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_exits_0_for_a_failing_submission(workdir):
    """A real CLI run on a broken submission: grading fails fast (its package does not import)."""
    broken = workdir / "syntax_error"
    files = (M.LAYERS, M.MODEL, M.T_LAYERS, M.T_MODEL)
    edits = [M.Patch(f, "import numpy as np", "import numpy as np +") for f in files]
    edits.append(M.Patch("captioning/net_visualization_pytorch.py", "import torch\n", "import torch +\n"))
    M.Submission("syntax_error", tuple(edits)).build(broken)
    proc = run_cli(broken, "--results", workdir / "broken.json", "--public")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((workdir / "broken.json").read_text())
    assert doc["score"] == 0 and doc["tests"]
    outputs = [t["output"] for t in doc["tests"] if not t["name"].startswith("overfit")]
    assert all("could not import captioning/" in o for o in outputs), outputs
    for f in (M.LAYERS, M.MODEL, M.T_LAYERS, M.T_MODEL):  # why, with line and column, once per file
        line = 1 + (broken / f).read_text().split("\n").index("import numpy as np +")
        said = [o for o in outputs if "SyntaxError" in o and "(%s, line %d, column " % (f, line) in o]
        assert len(said) == 1, (f, outputs)


def test_cli_nonexistent_path_fails_with_a_message(workdir):
    proc = run_cli(workdir / "no_such_submission")
    assert proc.returncode != 0
    assert "does not exist" in proc.stderr and "no_such_submission" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_folder_without_the_package_fails_with_a_message(workdir):
    empty = workdir / "not_a_submission"
    (empty / "notes").mkdir(parents=True)
    (empty / "README.txt").write_text("hello")
    proc = run_cli(empty)
    assert proc.returncode != 0
    assert "no captioning/ package" in proc.stderr and "Traceback" not in proc.stderr


def test_two_jobs_split_many_checks_and_never_a_few(workdir, monkeypatch):
    """With two jobs, the first pass's hundred numpy checks run in two children; the network
    visualization's sixteen, and each retry's or own-forward call's handful, in one (starting a
    child costs more than they take: bench/children_per_family.py). The units above the wrong
    layer, retried with the same functions swapped, are retried together."""
    dispatches, retries = [], []  # per dispatch: {autodiff: [checks of each child]}; each retry's swaps
    real_dispatch, real_run = SandboxRunner.dispatch, Session.run

    def dispatching(self, *args, **kwargs):
        dispatches.append({})
        return real_dispatch(self, *args, **kwargs)

    def running(self, checks, *args, **kwargs):
        dispatches[-1].setdefault(kwargs["autodiff"], []).append(len(checks))
        if kwargs["swaps"] and checks[0].mode == "run":
            retries.append(kwargs["swaps"])
        return real_run(self, checks, *args, **kwargs)
    monkeypatch.setattr(SandboxRunner, "dispatch", dispatching)
    monkeypatch.setattr(Session, "run", running)
    sub = next(s for s in M.MUTANTS if s.name == "rnn_step_no_bias")  # its callers are retried
    results = grade(sub.build(workdir / "two-jobs"), GradingOptions(units=FAST_UNITS, jobs=2))
    assert lost_units(results) == set(sub.lost)
    first, *later = dispatches
    assert len(first[False]) == 2 and sum(first[False]) >= 64 and first[True] == [16], dispatches
    assert later and all(len(children) == 1 for d in later for children in d.values()), dispatches
    assert retries and len(set(retries)) == len(retries), retries


@pytest.mark.parametrize("top", [None, "my_submission"])
def test_a_zip_grades_like_the_folder(workdir, top):
    sub = next(s for s in M.MUTANTS if s.name == "lstm_swapped_weights")
    folder = sub.build(workdir / ("%s-%s" % (sub.name, top)))
    units = ["lstm_step_forward", "lstm_step_backward", "lstm_forward"]
    archive = zip_folder(folder, workdir / ("%s.zip" % (top or "flat")), top)
    from_folder = grade(folder, GradingOptions(units=units))
    from_zip = grade(archive, GradingOptions(units=units))
    assert [(r.name, r.score, r.output) for r in from_zip] == [(r.name, r.score, r.output) for r in from_folder]
    assert any(WHERE.search(r.output) for r in from_zip)


@pytest.mark.slow
def test_pytest_front_end_reports_each_check_of_a_submission():
    """`pytest autograder/front --submission=DIR --public`: one test per public check, failing with the
    grader's message."""
    stub = RELEASE_DIR
    front = str(ROOT / "autograder" / "front")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", front,
                           "--submission=%s" % stub, "--public", "-k", "not overfit"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    public = [c for c in CHECKS if c.public and not BY_NAME[c.unit].training]
    assert proc.returncode == 1
    assert "%d failed" % len(public) in proc.stdout
    assert "not implemented yet" in proc.stdout
