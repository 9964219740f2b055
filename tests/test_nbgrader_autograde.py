"""nbgrader front end: `nbgrader autograde` gives the same per-unit points as `python -m autograder`,
keeps the student's package, never executes the submitted notebooks (student code runs only in the
kit's sandbox), and its feedback shows each unit's report but no hidden test and no solution code.

Runs the real nbgrader commands on a copy of the course (release regenerated there, so the copy has
its own gradebook: conftest's released_course) with four students: the answer key, a half-done
submission (LSTM not written), an attacker: the untouched release whose notebook's first editable code cell loads the
reference into the package, writes a file as root and patches what the test cells call, and a
linker: the answer key whose files are symbolic links to the course's reference and to a secret.
"""
import html
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.course import ASSIGNMENT, RELEASE_DIR, SOLUTIONS_DIR, notebooks
from autograder.grade import grade
from autograder.intake import STUDENT_FILES
from autograder.reference import all_checks
from autograder.results import GradingOptions
from autograder.units import BY_NAME as UNITS_BY_NAME
from autograder.units import LSTM_NB, RNN_NB, TOTAL, UNITS

pytestmark = pytest.mark.slow  # real nbgrader commands: about 90 s on 2 cores

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LSTM_FUNCTIONS = ("lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward")


def half_done(package):
    """The answer key's package with every LSTM layer function back to the release's stub."""
    released = (RELEASE_DIR / "captioning" / "rnn_layers.py").read_text()
    solved = (package / "rnn_layers.py").read_text()
    for name in LSTM_FUNCTIONS:
        pattern = re.compile(r"^def %s\(.*?(?=^def )" % name, re.S | re.M)
        solved = pattern.sub(lambda _: pattern.search(released).group(0), solved)
    (package / "rnn_layers.py").write_text(solved)


ATTACK = """\
import pathlib
import captioning.rnn_layers as _layers
# (a) the reference implementation, read from the course's source/, run into the student's module
exec(compile(pathlib.Path({reference!r}).read_text(), _layers.__file__, "exec"), vars(_layers))
# (b) a file written by the grading process's user, outside the submission
pathlib.Path({marker!r}).write_text("student code ran at autograde")
# (c) what the test cells call, patched: the public check, and the grader's entry points
import captioning.checks as _checks
_checks.check = lambda unit: print("PASS")
try:
    from autograder.units import BY_NAME as _units
    import autograder.notebook as _nb
    _nb.unit_score = lambda unit, submission=".": _units[unit].points
except ImportError:
    pass
try:
    import autograder.grade as _grade
    _grade.grade = lambda *args, **kwargs: []
except ImportError:
    pass
"""


def plant_attack(folder, reference, marker):
    """Prepend ATTACK to the first code cell students may edit in folder's RNN_Captioning.ipynb."""
    path = folder / RNN_NB
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and not c.metadata.get("nbgrader", {}).get("locked"))
    cell.source = ATTACK.format(reference=str(reference), marker=str(marker)) + cell.source
    nbformat.write(nb, path)


SECRET = "secret-of-the-grading-machine-5f1c"
LINKS = {"captioning/rnn_layers.py": "reference", "captioning/classifiers/rnn.py": "secret",
         "notes.txt": "secret", LSTM_NB: "source notebook"}


def plant_links(folder, course, secret):
    """Replace the linker's files by links: to the course's reference, a root-only secret file and
    the source notebook (its solutions); returns the answer key as it would be without them."""
    targets = {"reference": course / "source" / ASSIGNMENT / "captioning" / "rnn_layers.py", "secret": secret,
               "source notebook": course / "source" / ASSIGNMENT / LSTM_NB}
    missing = folder.parent / "without-the-links"
    shutil.copytree(folder, missing)
    for rel, target in LINKS.items():
        (folder / rel).unlink(missing_ok=True)
        os.symlink(targets[target], folder / rel)
        (missing / rel).unlink(missing_ok=True)
    return missing


def run(command, cwd):
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ["PATH"]))
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, "%s failed:\n%s" % (" ".join(command), proc.stdout[-3000:] + proc.stderr[-3000:])


@pytest.fixture(scope="module")
def course(tmp_path_factory, released_course):
    """A graded copy of the course, after autograde + feedback: (course dir, {student: kit's
    unit scores}, marker path the attack writes to, seconds autograde took)."""
    course = tmp_path_factory.mktemp("course")
    shutil.copytree(released_course, course, symlinks=True, dirs_exist_ok=True)
    marker = tmp_path_factory.mktemp("attack") / "written-as-root"
    secret = tmp_path_factory.mktemp("root-only") / "secret.py"
    secret.write_text("# %s\n" % SECRET)
    secret.chmod(0o600)
    students = {}
    for student in ("key", "halfway", "attacker", "linker"):
        folder = course / "submitted" / student / ASSIGNMENT
        shutil.copytree(course / "release" / ASSIGNMENT, folder)
        if student != "attacker":
            for rel in STUDENT_FILES:
                shutil.copyfile(SOLUTIONS_DIR / "captioning" / rel, folder / "captioning" / rel)
        students[student] = folder
    half_done(students["halfway"] / "captioning")
    plant_attack(students["attacker"], course / "source/image_captioning/captioning/rnn_layers.py", marker)
    missing = plant_links(students["linker"], course, secret)
    with ThreadPoolExecutor(1) as pool:  # the kit's grades while nbgrader works
        graded = ("key", "halfway", "linker")
        kit = pool.map(lambda s: grade(missing if s == "linker" else students[s], GradingOptions(jobs=1)).by_unit(),
                       graded)
        started = time.monotonic()
        run([str(BIN / "nbgrader"), "autograde", ASSIGNMENT, "--force"], course)
        seconds = time.monotonic() - started
        run([str(BIN / "nbgrader"), "generate_feedback", ASSIGNMENT, "--force"], course)
        return course, dict(zip(graded, kit)), marker, seconds


def nbgrader_unit_scores(course, student):
    with Gradebook("sqlite:///%s" % (course / "gradebook.db")) as gb:
        return {u.name: gb.find_grade(u.grade_id, u.notebook[:-len(".ipynb")], ASSIGNMENT, student).score
                for u in UNITS}


@pytest.mark.parametrize("student", ["key", "halfway"])
def test_autograde_gives_the_points_of_the_command_line_grader(course, student):
    course, kit, _, _ = course
    by_nbgrader = nbgrader_unit_scores(course, student)
    by_kit = {unit: got for unit, (got, _) in kit[student].items()}
    assert by_nbgrader == pytest.approx(by_kit, abs=1e-3)
    if student == "halfway":  # what the model units earn with unwritten layers is grade.py's policy
        assert {u for u, got in by_kit.items() if got == 0} >= set(LSTM_FUNCTIONS)
        assert all(by_kit[u.name] == pytest.approx(u.points) for u in UNITS if u.notebook == RNN_NB)
    else:
        assert sum(by_kit.values()) == pytest.approx(TOTAL)


def test_links_are_not_followed_and_cost_what_missing_files_cost(course):
    """The linker gets what the same folder without the linked files gets from the kit (a linked
    notebook: 0, as nbgrader gives a missing one), is told "not followed", and nothing the links
    point to (reference, secret, solutions) is in what autograde and feedback wrote for them."""
    course, kit, _, _ = course
    feedback = course / "feedback" / "linker" / ASSIGNMENT
    assert "links are not followed" in (feedback / RNN_NB).with_suffix(".html").read_text()
    assert "%s is a symbolic link, and links are not followed" % LSTM_NB in (feedback / LSTM_NB).with_suffix(
        ".html").read_text()
    for folder in (feedback, course / "autograded" / "linker" / ASSIGNMENT):  # the reference and notebook: markers
        for path in folder.rglob("*"):
            if path.is_file():
                text = path.read_text(errors="replace")
                assert SECRET not in text and "BEGIN SOLUTION" not in text, path
    expected = {unit: 0.0 if UNITS_BY_NAME[unit].notebook == LSTM_NB else got
                for unit, (got, _) in kit["linker"].items()}
    assert 0 < sum(expected.values()) < TOTAL
    assert nbgrader_unit_scores(course, "linker") == pytest.approx(expected, abs=1e-3)


def test_autograde_keeps_the_students_package(course):
    course = course[0]
    graded = course / "autograded" / "halfway" / ASSIGNMENT / "captioning" / "rnn_layers.py"
    assert "raise NotImplementedError" in graded.read_text()


def test_feedback_shows_no_hidden_test_and_no_solution(course):
    course = course[0]
    feedback = list((course / "feedback" / "halfway" / ASSIGNMENT).rglob("*"))
    html = [p for p in feedback if p.suffix == ".html"]
    assert len(html) == len(notebooks())
    released = (RELEASE_DIR / "captioning" / "rnn_layers.py").read_text()
    lstm_step_solution = (ROOT / "source/image_captioning/captioning/rnn_layers.py").read_text() \
        .split("### BEGIN SOLUTION")[7].split("### END SOLUTION")[0]
    solution_lines = {line.strip() for line in lstm_step_solution.splitlines()
                      if len(line.strip()) > 20 and line.strip() not in released}
    assert solution_lines
    for path in feedback:
        if path.is_file():
            text = path.read_text(errors="replace")
            for marker in ("HIDDEN TESTS", "unit_score", "BEGIN SOLUTION"):
                assert marker not in text, "%s in %s" % (marker, path)
            for line in solution_lines:
                assert line not in text, "solution line %r in %s" % (line, path)



def test_feedback_shows_each_units_report(course):
    course = course[0]
    feedback = course / "feedback" / "halfway" / ASSIGNMENT
    lstm = (feedback / "LSTM_Captioning.html").read_text()
    rnn = (feedback / "RNN_Captioning.html").read_text()
    assert "FAIL: not implemented yet" in lstm and "lstm_step_forward" in lstm
    assert "PASS: " in rnn and "FAIL: " not in rnn


def test_feedback_gives_hidden_tests_points_but_not_their_names_and_outputs(course):
    """As Gradescope's "after_published" until staff release them (tests/test_nbgrader_exchange.py);
    staff see them in the autograded notebooks."""
    course = course[0]
    hidden = [t for t, c in all_checks().items() if not c.public and UNITS_BY_NAME[c.unit].notebook == RNN_NB]
    shown = html.unescape((course / "feedback" / "key" / ASSIGNMENT / RNN_NB).with_suffix(".html").read_text())
    autograded = (course / "autograded" / "key" / ASSIGNMENT / RNN_NB).read_text()
    assert hidden and all(title in autograded for title in hidden)
    assert not [title for title in hidden if title in shown]
    assert "rnn_step_forward: hidden tests (shown when the course releases them)" in shown


def test_student_code_in_the_notebook_never_runs_at_autograde(course, capsys):
    """The attack: nothing written as root, every code unit 0, and no notebook cell executed."""
    course, _, marker, seconds = course
    with capsys.disabled():
        print("\nnbgrader autograde of 4 submissions: %.1f s (when it executed the notebooks: about "
              "73 s for one submission, README)" % seconds)
    assert not marker.exists(), "student code ran during nbgrader autograde"
    assert nbgrader_unit_scores(course, "attacker") == {u.name: 0 for u in UNITS}
    for student in ("key", "attacker"):
        for name in (RNN_NB, LSTM_NB):
            nb = nbformat.read(course / "autograded" / student / ASSIGNMENT / name, as_version=4)
            for cell in nb.cells:
                if cell.cell_type == "code" and not cell.metadata.get("nbgrader", {}).get("grade"):
                    assert not cell.outputs and cell.execution_count is None, "%s: a cell was run" % name


def test_the_attack_works_when_run(tmp_path):
    """So that the test above means something: run where it is executed (here, a plain python in a
    copy of the release), ATTACK writes its file and the package then computes the reference's
    answers."""
    folder = tmp_path / ASSIGNMENT
    shutil.copytree(RELEASE_DIR, folder)
    marker = tmp_path / "written"
    attack = ATTACK.format(reference=str(ROOT / "source/image_captioning/captioning/rnn_layers.py"),
                           marker=str(marker))
    probe = "import numpy as np\nfrom captioning.rnn_layers import rnn_step_forward\n" \
            "print(rnn_step_forward(np.ones((1, 2)), np.ones((1, 3)), np.ones((2, 3)), np.ones((3, 3)), np.ones(3))[0])"
    proc = subprocess.run([sys.executable, "-c", attack + probe], cwd=folder, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    assert marker.exists() and "0.99" in proc.stdout
