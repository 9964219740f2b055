"""The autograder's own tests: answer key, untouched release, typical mistakes, correct variants,
feedback text and the command line.

Submissions are built from the answer key by tests/mutants.py. Grading a submission without the two
overfitting units takes about a second; the three full grades (answer key through the CLI, the
stub, one overfit-only mistake) run in the background while the fast ones are checked.
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
from autograder.grade import grade
from autograder.intake import STUDENT_FILES
from autograder.mistakes import BY_ID, MISTAKES, of_unit
from autograder.reference import all_checks, checks_module, reference_impl
from autograder.results import GradingOptions
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
    zero_init = next(s for s in M.MUTANTS if s.units)
    zero_dir = zero_init.build(workdir / "zero_init")
    pool = ThreadPoolExecutor(3)
    futures = {
        "stub_dir": pool.submit(lambda: stub),
        "stub": pool.submit(grade, stub, GradingOptions(jobs=1)),
        "cli": pool.submit(cli_full_grade, M.answer_key(), workdir / "answer_key.json"),
        zero_init.name: pool.submit(lambda: (zero_dir, grade(zero_dir, GradingOptions(units=zero_init.units, jobs=2)))),
    }
    yield futures
    pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def graded(workdir, slow):
    """graded(submission) -> (folder, results), each submission built and graded once."""
    cache = {}

    def get(sub):
        if sub.name not in cache:
            folder = workdir / "sub" / sub.name
            if sub.name in slow:
                cache[sub.name] = slow[sub.name].result()
            else:
                sub.build(folder)
                cache[sub.name] = (folder, grade(folder, GradingOptions(units=sub.units or FAST_UNITS)))
        return cache[sub.name]
    return get


def mutant(name):
    return next(s for s in M.MUTANTS if s.name == name)


def alternative(name):
    return next(s for s in M.ALTERNATIVES if s.name == name)


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


# ---------------------------------------------------------------- 2. typical mistakes

def test_mistakes_are_many_distinct_and_cover_every_unit():
    assert len(M.MUTANTS) >= 15
    assert len({s.name for s in M.MUTANTS}) == len(M.MUTANTS)
    assert len({s.edits for s in M.MUTANTS}) == len(M.MUTANTS)
    covered = set().union(*(s.lost for s in M.MUTANTS))
    assert covered == set(BY_NAME), "units no mistake breaks: %s" % (set(BY_NAME) - covered)
    for s in M.MUTANTS:
        assert s.lost and s.lost <= set(s.units or FAST_UNITS), s.name


@pytest.mark.slow
@pytest.mark.parametrize("sub", M.MUTANTS, ids=lambda s: s.name)
def test_a_mistake_costs_exactly_the_units_it_breaks(graded, sub):
    """One bug costs once: units calling a broken unit keep their marks (dependency retry)."""
    _, results = graded(sub)
    lost = lost_units(results)
    assert lost == set(sub.lost), "%s (%s): lost points on %s, expected exactly %s\n%s" % (
        sub.name, sub.what, sorted(lost), sorted(sub.lost), failures(results))


# ---------------------------------------------------------------- 2b. the mistake named (issue #22)

def hint_lines(results):
    """{unit: [hint lines in its tests' outputs]} of the units that have any."""
    found = {}
    for r in results:
        for line in r.output.split("\n"):
            if line.startswith(HINT_PREFIX):
                found.setdefault(r.unit, []).append(line)
    return found


def test_the_corpus_is_the_mutants_and_every_code_unit_has_two_diagnosable_mistakes():
    assert [s.name for s in M.MUTANTS] == [m.id for m in MISTAKES]
    for unit in UNITS:
        if not unit.training:
            assert len(of_unit(unit.name)) >= 2, unit.name
    for m in MISTAKES:
        assert m.hint and "\n" not in m.hint and not m.hint.endswith(".") and len(m.hint) <= 160, m.id
        trained = {u for u in m.lost if BY_NAME[u].training}
        undiagnosable = m.hinted == frozenset()  # declared so in the corpus, with the reason
        assert m.diagnosed <= m.lost - trained and (m.diagnosed or m.lost == trained or undiagnosable), m.id
    assert [m.id for m in MISTAKES if m.hinted == frozenset()] == [
        "rnn_forward_squeezed_step_input", "sample_rnn_branch_crashes", "saliency_train_mode", "fooling_descent"]


@pytest.mark.slow
@pytest.mark.parametrize("sub", M.MUTANTS, ids=lambda s: s.name)
def test_a_mistake_gets_exactly_its_own_hint(graded, sub):
    """Once per unit it breaks (the training units aside), on a failing test, and nowhere else."""
    mistake = BY_ID[sub.name]
    _, results = graded(sub)
    lines = hint_lines(results)
    assert set(lines) == set(mistake.diagnosed), "%s: hints on %s, expected on %s\n%s" % (
        sub.name, sorted(lines), sorted(mistake.diagnosed), failures(results))
    for unit in mistake.diagnosed:
        assert lines[unit] == [HINT_PREFIX + mistake.hint + "."], (sub.name, lines[unit])
        carrier = [r for r in results if r.diagnosis and r.unit == unit]
        assert len(carrier) == 1 and carrier[0].score == 0, (sub.name, unit)
        assert carrier[0].diagnosis["hint"] == mistake.hint and mistake.id in carrier[0].diagnosis["mistakes"]
        assert all(BY_ID[m].hint == mistake.hint for m in carrier[0].diagnosis["mistakes"])


@pytest.mark.slow
@pytest.mark.parametrize("sub", M.ALTERNATIVES, ids=lambda s: s.name)
def test_a_correct_variant_gets_no_hint(graded, sub):
    _, results = graded(sub)
    assert not hint_lines(results) and not any(r.diagnosis for r in results)


def test_the_answer_key_and_the_untouched_release_get_no_hint(slow):
    proc, doc = slow["cli"].result()
    assert doc and not [t for t in doc["tests"] if HINT_PREFIX in t["output"] or t.get("extra_data")]
    assert not hint_lines(slow["stub"].result())


@pytest.mark.slow
def test_a_partial_submission_gets_a_hint_on_its_mistake_only(graded):
    """Units left unwritten, units of the answer key and one mistake: the mistake's unit alone is named."""
    sub = M.Submission("partial_with_a_mistake", (
        M.Body(M.LAYERS, "lstm_step_forward", "raise NotImplementedError()"),
        M.Body(M.T_LAYERS, "multihead_attention_backward", "raise NotImplementedError()"),
        M.Body(M.MODEL, "beam_search", "raise NotImplementedError()"),
    ) + BY_ID["rnn_backward_no_carry"].edits)
    _, results = graded(sub)
    assert set(hint_lines(results)) == {"rnn_backward"}, failures(results)


# ---------------------------------------------------------------- 3. correct variants

def test_there_are_enough_correct_variants():
    assert len(M.ALTERNATIVES) >= 5
    assert len({s.name for s in M.ALTERNATIVES}) == len(M.ALTERNATIVES)


@pytest.mark.slow
@pytest.mark.parametrize("sub", M.ALTERNATIVES, ids=lambda s: s.name)
def test_a_correct_variant_gets_full_marks(graded, sub):
    _, results = graded(sub)
    assert not lost_units(results), "%s is correct but loses points:\n%s" % (sub.name, failures(results))


# ---------------------------------------------------------------- 4. feedback

def test_failure_names_the_check_and_the_error_against_the_tolerance(graded):
    _, results = graded(mutant("no_tanh_derivative"))
    failed = [r for r in results if r.score < r.max_score]
    assert failed
    for r in failed:
        assert r.name.startswith("rnn_step_backward: ") and len(r.name) > len("rnn_step_backward: ")
        m = re.search(r"largest relative error ([\d.e+-]+) exceeds the tolerance ([\d.e+-]+)", r.output)
        assert m, r.output
        assert float(m.group(1)) > float(m.group(2))


def test_failure_reports_a_shape_mismatch(graded):
    _, results = graded(mutant("db_wrong_axis"))
    public = [r for r in results if r.public and r.score < r.max_score]
    assert public and "db has shape (4,), expected (6,)" in public[0].output, failures(results)


def test_failure_reports_the_exception_at_the_students_file_and_line(graded):
    folder, results = graded(mutant("lstm_swapped_weights"))
    failed = [r for r in results if r.unit == "lstm_step_forward"]
    assert failed and all(r.score == 0 for r in failed)
    for r in failed:
        assert "ValueError" in r.output and "not aligned" in r.output, r.output
        where = WHERE.search(r.output)
        assert where and where.group(1) == M.LAYERS and where.group(3) == "lstm_step_forward", r.output
        assert "x.dot(Wh)" in (folder / M.LAYERS).read_text().split("\n")[int(where.group(2)) - 1]


def test_returning_none_is_explained(graded):
    _, results = graded(mutant("embedding_returns_none"))
    failed = [r for r in results if r.score < r.max_score]
    assert failed and all("dW is NoneType, not a numeric array" in r.output for r in failed), failures(results)


def expected_token_rows(check):
    want = check.expected(reference_impl()) if callable(check.expected) else check.expected
    return [str(row) for row in checks_module().caption_tokens(want["captions"])]


@pytest.mark.slow
def test_hidden_failures_never_show_expected_values(graded):
    seen = 0
    for sub in M.MUTANTS:
        if sub.units:
            continue
        _, results = graded(sub)
        for r in results:
            if r.public or r.score == r.max_score:
                continue
            seen += 1
            message = "\n".join(line for line in r.output.split("\n")
                                if not line.startswith(("warning: ", HINT_PREFIX)))
            assert "\n" not in message and "[" not in message, (sub.name, r.name, r.output)
            assert "expected [" not in message and "got " not in message, (sub.name, r.name, r.output)
            check = next(c for c in CHECKS if c.title == r.name)
            if check.compare == "tokens":
                for row in expected_token_rows(check):
                    assert row not in r.output, (sub.name, r.name, r.output)
    assert seen > 20


def test_hidden_sample_failure_hides_the_decode_but_public_shows_it(graded):
    _, results = graded(mutant("sample_no_feedback"))
    public = [r for r in results if r.public and r.unit == M.RNN_SAMPLE][0]
    hidden = [r for r in results if not r.public and r.unit == M.RNN_SAMPLE and r.score == 0]
    assert "expected [[" in public.output
    assert hidden and all("[" not in r.output for r in hidden), failures(results)


def test_changing_an_input_in_place_is_warned_about(graded):
    _, results = graded(alternative("rnn_backward_accumulates_into_dh_in_place"))
    warned = [r for r in results if "warning: rnn_backward changed its input argument 1" in r.output]
    assert warned, failures(results) or "no warning in any output"
    for r in warned:
        assert r.unit == "rnn_backward" and r.score == r.max_score
        assert any(line.startswith("warning: ") for line in r.output.split("\n")[1:]), r.output
    assert not [r for r in results if "warning" in r.output and r.unit != "rnn_backward"]


def test_a_passing_unit_says_what_passed(graded):
    _, results = graded(alternative("sample_stops_at_end"))
    assert all(r.output.startswith("PASS: ") for r in results)
    assert any(re.search(r"largest relative error \S+ \(tolerance \S+\)", r.output) for r in results)


# ---------------------------------------------------------------- 5. command line

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


@pytest.mark.parametrize("top", [None, "my_submission"])
def test_a_zip_grades_like_the_folder(graded, workdir, top):
    sub = mutant("lstm_swapped_weights")
    folder, _ = graded(sub)
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
