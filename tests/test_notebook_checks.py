"""The notebooks' check("unit") cells, run as a student runs them in a copy of the release: a unit
failing only through a unit it depends on names that unit first, as the grader does; an optional
unit left unwritten is skipped, never a stop; a known mistake is named (captioning/hints.py)."""
import ast
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from autograder import syntax
from autograder.course import ASSIGNMENT, PACKAGE, RELEASE_DIR
from autograder.diagnosis import HINT_PREFIX
from autograder.grade import grade
from autograder.intake import STUDENT_FILES
from autograder.mistakes import BY_ID, MISTAKES
from autograder.reference import checks_module
from autograder.results import GradingOptions
from autograder.rules import WITHHELD
from autograder.sandbox import Limits
from autograder.units import UNITS
from tests import mutants as M
from tests.mutants import LAYERS, MODEL, T_MODEL, Body, Patch, Submission

NO_BIAS = Patch(LAYERS, "next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)",
                "next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh))")
NO_BEAM_SEARCH = (Body(MODEL, "beam_search", "raise NotImplementedError()"),
                  Body(T_MODEL, "beam_search", "raise NotImplementedError()"))


def student_folder(tmp_path, *edits):
    """A copy of the release whose files students edit hold the answer key with edits applied."""
    folder = tmp_path / ASSIGNMENT
    shutil.copytree(RELEASE_DIR, folder)
    key = Submission("student", edits).build(tmp_path / "key")
    for rel in STUDENT_FILES:
        shutil.copyfile(key / PACKAGE / rel, folder / PACKAGE / rel)
    return folder


def check_cell(folder, unit, code="check(%r)"):
    """What the notebook cell check(unit) prints, and whether it raised."""
    proc = subprocess.run([sys.executable, "-c", "from captioning.checks import check; " + code % unit],
                          cwd=folder, capture_output=True, text=True, timeout=300)
    return proc.stdout.splitlines(), proc.returncode != 0


def test_a_correct_unit_failing_through_a_broken_dependency_names_it_first(tmp_path):
    folder = student_folder(tmp_path, NO_BIAS)
    lines, raised = check_cell(folder, "rnn_step_forward")
    assert raised and lines[0].startswith("FAIL  rnn_step_forward: "), lines  # its own bug: no note
    for unit in ("rnn_step_backward", "rnn_forward", "rnn_backward"):
        lines, raised = check_cell(folder, unit)
        assert raised and lines[0] == ("NOTE  %s uses your rnn_step_forward, which fails its own check: fix "
                                       "rnn_step_forward first" % unit), lines
        assert lines[1].startswith("FAIL  %s: " % unit), lines
    scores = {}
    for result in grade(folder, GradingOptions(units=["rnn_step_forward", "rnn_step_backward", "rnn_forward"])):
        got, best = scores.get(result.unit, (0, 0))
        scores[result.unit] = (got + result.score, best + result.max_score)
    assert scores["rnn_step_forward"][0] < scores["rnn_step_forward"][1]  # the grader agrees:
    assert scores["rnn_step_backward"][0] == scores["rnn_step_backward"][1]  # the two others are correct
    assert scores["rnn_forward"][0] == scores["rnn_forward"][1]


def test_a_unit_whose_dependencies_pass_gets_no_note(tmp_path):
    folder = student_folder(tmp_path, Patch(LAYERS, "da = dnext_h * (1 - next_h ** 2)", "da = dnext_h"))
    lines, raised = check_cell(folder, "rnn_step_backward")
    assert raised and lines[0].startswith("FAIL  rnn_step_backward: "), lines
    assert not [line for line in lines if line.startswith("NOTE")], lines


def test_an_unwritten_optional_unit_is_skipped_and_a_required_one_stops(tmp_path):
    folder = student_folder(tmp_path, *NO_BEAM_SEARCH)
    for unit in ("CaptioningRNN.beam_search", "CaptioningTransformer.beam_search"):
        skipped = ["SKIP  %s -- not written: skipped (optional)" % unit, "(False, '')"]  # submit's "not passing"
        assert check_cell(folder, unit, "from captioning.checks import report; print(report(%r))") == (skipped, False)
    folder = student_folder(tmp_path / "required", Body(MODEL, "sample", "raise NotImplementedError()"))
    lines, raised = check_cell(folder, "CaptioningRNN.sample (rnn)")
    assert raised and lines == ["FAIL  CaptioningRNN.sample (rnn): greedy decode with fixed parameters -- "
                                "not implemented yet"], lines


def test_a_check_cell_shows_its_report_one_line_when_it_fails_and_no_value(tmp_path):
    """In Jupyter: PASS/FAIL lines and the hint, a failure stops Run All with one line and no
    traceback into the kit's code, and a passing cell echoes nothing (issue #27)."""
    import nbformat
    from nbclient import NotebookClient
    folder = student_folder(tmp_path, NO_BIAS)
    cells = ["from captioning.checks import check", 'check("rnn_step_forward")', 'check("word_embedding_forward")']
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    failed, passed = notebook.cells[1].outputs, notebook.cells[2].outputs
    assert [o.output_type for o in failed] == ["stream", "error"] and failed[0].text.startswith("FAIL  "), failed
    assert failed[1].ename == "CheckFailed" and failed[1].traceback == [
        "CheckFailed: " + failed[1].evalue] and "rnn_step_forward" in failed[1].evalue, failed
    assert [o.output_type for o in passed] == ["stream"] and passed[0].text.startswith("PASS  "), passed


# ---------------------------------------------------------------- issue #22: the mistake named at the desk

def desk_lines(folder, units):
    """{unit: the lines check(unit) prints} of each of units, one after another in one process (as
    cells run in one kernel), failures caught."""
    code = ("from captioning.checks import check\nfor u in %r:\n    print('UNIT', u)\n    try:\n"
            "        check(u)\n    except AssertionError:\n        pass\n" % (list(units),))
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("UNIT "):
            current = lines.setdefault(line[5:], [])
        else:
            current.append(line)
    return lines


def hint_units(sub):
    """The units whose hints are looked for: those the submission loses, or every fast one."""
    return sorted(sub.lost) if sub.lost else [u.name for u in UNITS if not u.training]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """[(submission, folder, touched units, desk_lines)] of every mistake and correct variant; each
    submission's check cells run once for the tests of hints and of agreement."""
    root, key = tmp_path_factory.mktemp("corpus"), M.answer_key()

    def desk(n, sub):
        folder = student_folder(root / str(n), *sub.edits)
        touched = touched_units(folder, key)
        return sub, folder, touched, desk_lines(folder, sorted(set(touched) | set(hint_units(sub))))
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda a: desk(*a), enumerate(M.MUTANTS + M.ALTERNATIVES)))


def fails_in_public(unit, mistake_id):
    """Whether a mistake fails a public check of unit in the notebook (hints.json says so)."""
    data = json.loads((RELEASE_DIR / PACKAGE / "hints.json").read_text())["units"][unit][mistake_id]["checks"]
    return any(answer != "pass" for answer in data.values())


@pytest.mark.slow
def test_check_names_each_mistake_of_the_corpus_that_fails_a_public_check(corpus):
    """Every mistake of the corpus (autograder/mistakes.py) that fails a public check of a unit gets its
    own hint there, once; the correct variants get none."""
    wrong = []
    for sub, _, _, lines in corpus:
        hints = [line for unit in hint_units(sub) for line in lines[unit] if line.startswith("HINT  ")]
        mistake = BY_ID.get(sub.name)
        units = [u for u in sorted(mistake.diagnosed) if fails_in_public(u, mistake.id)] if mistake else []
        if hints != ["HINT  " + HINT_PREFIX + (mistake.hint if mistake else "") + "."] * len(units):
            wrong.append((sub.name, units, hints))
    assert not wrong, wrong
    assert sum(1 for m in MISTAKES for u in m.diagnosed if fails_in_public(u, m.id)) >= 50


def test_hints_json_holds_only_public_checks_and_hints():
    data = json.loads((RELEASE_DIR / PACKAGE / "hints.json").read_text())
    public = {(c.unit, c.name) for c in checks_module().PUBLIC_CHECKS}
    for unit, mistakes in data["units"].items():
        for mistake_id, entry in mistakes.items():
            assert set(entry) == {"hint", "checks"} and entry["hint"] == BY_ID[mistake_id].hint
            assert {(unit, name) for name in entry["checks"]} <= public
    assert (RELEASE_DIR / PACKAGE / "hints.json").stat().st_size < 200_000


# ---------------------------------------------------------------- issue #28: the desk and the grader agree

def function_source(folder, function):
    """The source of a unit's function ('module:qualname') in a package folder, or None."""
    module, qualname = function.split(":")
    node = syntax.parse((folder / PACKAGE / ("%s.py" % module.replace(".", "/"))).read_text())
    for name in qualname.split("."):
        node = next((n for n in node.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name), None)
        if node is None:
            return None
    return ast.dump(node)


def touched_units(folder, key):
    """The units (training ones aside) whose function differs from the answer key's, and those calling
    them directly (where a retry or the own-forward check comes in)."""
    changed = {u.name for u in UNITS if function_source(folder, u.function) != function_source(key, u.function)}
    return [u.name for u in UNITS if not u.training and ({u.name, *u.depends} & changed)]


def notebook_verdicts(lines, units):
    """{title: passed} of the public checks as check(unit) prints them, for each of units."""
    return {line[6:].split(" -- ")[0]: line.startswith("PASS") for unit in units for line in lines[unit]
            if line[:6] in ("PASS  ", "FAIL  ")}


def grader_verdicts(folder, units):
    """{title: (passed, output)} of the public checks in a full grade: a check whose points a unit rule
    withholds (rules 6 and 7) passed."""
    results = grade(folder, GradingOptions(units=units, limits=Limits(submission_seconds=240), jobs=2))
    return {r.name: (r.score > 0 or WITHHELD in r.output, r.output) for r in results if r.public}


# A check the notebook fails and the grader passes says why: right on a retry (rule 2, which the
# notebook announces with "fix ... first"), or the same bug as a unit grading the same method.
EXPLAINED = ("PASS: right with the reference", "PASS: the same failure as")


@pytest.mark.slow
def test_the_notebook_and_the_grader_agree_on_every_public_check_of_the_corpus(corpus):
    """Every mistake and correct variant, on the units it touches: a public check check(unit) passes
    passes in the grader (its points may be withheld by rules 6 and 7, which say so), and one it
    fails fails in the grader unless EXPLAINED."""
    disagree = []
    with ThreadPoolExecutor(2) as pool:
        graders = list(pool.map(lambda run: grader_verdicts(run[1], run[2]), corpus))
    for (sub, _, touched, lines), grader in zip(corpus, graders):
        desk = notebook_verdicts(lines, touched)
        assert set(desk) == set(grader), (sub.name, set(desk) ^ set(grader))
        for title, passed in desk.items():
            in_grader, output = grader[title]
            if passed != in_grader and (passed or not output.startswith(EXPLAINED)):
                disagree.append((sub.name, title, passed, output))
    assert not disagree, "\n".join(map(str, disagree))
