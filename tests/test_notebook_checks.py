"""The notebooks' check("unit") cells, run as a student runs them in a copy of the release: a unit
failing only through a unit it depends on names that unit first, as the grader does; an optional
unit left unwritten is skipped, never a stop; a known mistake is named (captioning/hints.py)."""
import json
import shutil
import subprocess
import sys

from autograder.course import ASSIGNMENT, PACKAGE, RELEASE_DIR
from autograder.grade import grade
from autograder.intake import STUDENT_FILES
from autograder.mistakes import BY_ID
from autograder.reference import checks_module
from autograder.results import GradingOptions
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


def test_hints_json_holds_only_public_checks_and_hints():
    data = json.loads((RELEASE_DIR / PACKAGE / "hints.json").read_text())
    public = {(c.unit, c.name) for c in checks_module().PUBLIC_CHECKS}
    for unit, mistakes in data["units"].items():
        for mistake_id, entry in mistakes.items():
            assert set(entry) == {"hint", "checks"} and entry["hint"] == BY_ID[mistake_id].hint
            assert {(unit, name) for name in entry["checks"]} <= public
    assert (RELEASE_DIR / PACKAGE / "hints.json").stat().st_size < 200_000
