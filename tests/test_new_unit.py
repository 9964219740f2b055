"""Adding a unit is one entry in units.py plus its solution region, public check and hidden check:
in a copy of the course, a toy unit is picked up by the release (stub, notebook test cell,
gradebook), the command-line grader and the batch grader, with nothing else edited. In the same
copy the "going further" units (beam search) are set to 0 points, as staff may: they still run and
report, for no points."""
import csv
import json
import os
import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder.course import ASSIGNMENT, ROOT
from autograder.units import UNITS, check_dependency_order
from tools.release import copy_student_inputs

TOY_FUNCTION = '''

def toy_square(x):
    """Elementwise square.

    Inputs:
    - x: Input data, a numpy array of any shape.

    Returns:
    - out: x squared elementwise, of the same shape.
    """
    ### BEGIN SOLUTION
    out = x * x
    ### END SOLUTION
    return out
'''
TOY_PUBLIC_CHECK = '''

PUBLIC_CHECKS.append(Check("toy_square", "fixed inputs", lambda impl: {"out": impl.call("toy_square", np.arange(3.0))},
                           {"out": np.array([0.0, 1.0, 4.0])}))
'''
TOY_HIDDEN_CHECK = '''    return [
        same("toy_square", "random inputs", "call_probe", "toy_square", np.random.RandomState(s(90)).randn(5)),
'''


def edit(path, old, new):
    text = path.read_text()
    assert text.count(old) == 1, (path, old)
    path.write_text(text.replace(old, new))


def run(*args, cwd):
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PATH="%s:%s" % (os.path.dirname(sys.executable), os.environ["PATH"])))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


@pytest.mark.slow
def test_a_toy_unit_is_picked_up_everywhere(tmp_path):
    course = tmp_path / "course"
    for name in ("autograder", "source", "tools", "nbgrader_config.py"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copyfile
        copy(ROOT / name, course / name)
    copy_student_inputs(course)
    package = course / "source" / ASSIGNMENT / "captioning"
    edit(course / "autograder" / "units.py", '    *model_units("lstm", LSTM_NB, ("lstm_forward", "lstm_backward"), '
         '"lstm_step_forward"),\n', '    *model_units("lstm", LSTM_NB, ("lstm_forward", "lstm_backward"), '
         '"lstm_step_forward"),\n    layer("toy_square", RNN_NB, 2),\n')
    for beam, notebook in (("CaptioningRNN.beam_search", "RNN_NB"), ("CaptioningTransformer.beam_search",
                                                                         "TRANSFORMER_NB")):
        edit(course / "autograder" / "units.py", 'Unit("%s", %s, 5,' % (beam, notebook),
             'Unit("%s", %s, 0,' % (beam, notebook))
    with open(package / "rnn_layers.py", "a") as f:
        f.write(TOY_FUNCTION)
    with open(package / "checks.py", "a") as f:
        f.write(TOY_PUBLIC_CHECK)
    edit(course / "autograder" / "hidden.py", "    return [\n        forward(", TOY_HIDDEN_CHECK + "        forward(")

    run("-m", "tools.release", cwd=course)
    released = (course / "release" / ASSIGNMENT / "captioning" / "rnn_layers.py").read_text()
    assert "def toy_square(x):" in released and "out = x * x" not in released
    cells = nbformat.read(course / "release" / ASSIGNMENT / "RNN_Captioning.ipynb", as_version=4).cells
    assert any(c.source == 'check("toy_square")' and c.metadata.nbgrader["points"] == 2 for c in cells)
    assert any(c.source == 'check("CaptioningRNN.beam_search")' and c.metadata.nbgrader["points"] == 0
               for c in cells)

    for folder, want in (("solutions", 2.0), ("release", 0.0)):
        out = tmp_path / ("%s.json" % folder)
        run("-m", "autograder", str(course / folder / ASSIGNMENT), "--results", str(out), cwd=course)
        toy = [t for t in json.loads(out.read_text())["tests"] if t["tags"] == ["toy_square"]]
        assert [t["visibility"] for t in toy] == ["visible", "after_published"]
        assert sum(t["score"] for t in toy) == pytest.approx(want), toy
        beam = [t for t in json.loads(out.read_text())["tests"] if t["tags"][0].endswith("beam_search")]
        assert len(beam) == 11 and all(t["max_score"] == 0 == t["score"] for t in beam)
        assert ("PASS" if folder == "solutions" else "FAIL") in beam[0]["output"]

    subs = tmp_path / "subs"
    shutil.copytree(course / "solutions" / ASSIGNMENT, subs / "key")
    shutil.copytree(course / "release" / ASSIGNMENT, subs / "stub")
    run("-m", "autograder", "batch", str(subs), "--out", str(tmp_path / "grades"), "--units", "toy_square",
        cwd=course)
    with open(tmp_path / "grades" / "grades.csv") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert float(rows["key"]["toy_square"]) == 2 and float(rows["stub"]["toy_square"]) == 0


def test_a_unit_listed_before_its_dependencies_is_refused():
    """Grading resolves units in units.py's order: a unit placed before one it depends on would be
    graded before its dependency's verdict is known, so importing such a list fails, naming both."""
    check_dependency_order(UNITS)
    beam = next(i for i, u in enumerate(UNITS) if u.name == "CaptioningRNN.beam_search")
    lstm = next(i for i, u in enumerate(UNITS) if u.name == "lstm_step_forward")
    moved = list(UNITS)
    moved.insert(lstm, moved.pop(beam))
    with pytest.raises(ValueError, match="CaptioningRNN.beam_search is listed before lstm_step_forward"):
        check_dependency_order(tuple(moved))
