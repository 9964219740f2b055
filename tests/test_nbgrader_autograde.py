"""nbgrader front end: `nbgrader autograde` gives the same per-unit points as `python -m autograder`,
keeps the student's package, and its feedback shows no hidden test and no solution code.

Runs the real nbgrader commands on a copy of the course (release regenerated there, so the copy has
its own gradebook) with two students: the answer key and a half-done submission (LSTM not written).
"""
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from autograder.grade import STUDENT_FILES, grade
from autograder.report import unit_scores
from autograder.units import UNITS

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LSTM_FUNCTIONS = ("lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward")


def half_done(package):
    """The answer key's package with every LSTM layer function back to the release's stub."""
    released = (ROOT / "release/image_captioning/captioning/rnn_layers.py").read_text()
    solved = (package / "rnn_layers.py").read_text()
    for name in LSTM_FUNCTIONS:
        pattern = re.compile(r"^def %s\(.*?(?=^def )" % name, re.S | re.M)
        solved = pattern.sub(lambda _: pattern.search(released).group(0), solved)
    (package / "rnn_layers.py").write_text(solved)


def run(command, cwd):
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ["PATH"]))
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, "%s failed:\n%s" % (" ".join(command), proc.stdout[-3000:] + proc.stderr[-3000:])


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A graded copy of the course: {student: submitted folder}, after autograde + feedback."""
    course = tmp_path_factory.mktemp("course")
    for name in ("source", "release", "tools", "autograder", "nbgrader_config.py"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copyfile
        copy(ROOT / name, course / name)
    os.symlink(ROOT / "datasets", course / "datasets")
    run([sys.executable, "-m", "tools.release"], course)
    students = {}
    for student in ("key", "halfway"):
        folder = course / "submitted" / student / "image_captioning"
        shutil.copytree(course / "release" / "image_captioning", folder)
        for rel in STUDENT_FILES:
            shutil.copyfile(ROOT / "solutions/image_captioning/captioning" / rel, folder / "captioning" / rel)
        students[student] = folder
    half_done(students["halfway"] / "captioning")
    with ThreadPoolExecutor(2) as pool:  # the kit's grades while nbgrader works
        kit = pool.map(lambda s: unit_scores(grade(students[s], jobs=1)), students)
        run([str(BIN / "nbgrader"), "autograde", "image_captioning", "--force"], course)
        run([str(BIN / "nbgrader"), "generate_feedback", "image_captioning", "--force"], course)
        return course, dict(zip(students, kit))


def nbgrader_unit_scores(course, student):
    with Gradebook("sqlite:///%s" % (course / "gradebook.db")) as gb:
        return {u.name: gb.find_grade(u.grade_id, u.notebook[:-len(".ipynb")], "image_captioning", student).score
                for u in UNITS}


@pytest.mark.parametrize("student", ["key", "halfway"])
def test_autograde_gives_the_points_of_the_command_line_grader(course, student):
    course, kit = course
    by_nbgrader = nbgrader_unit_scores(course, student)
    by_kit = {unit: got for unit, (got, _) in kit[student].items()}
    assert by_nbgrader == pytest.approx(by_kit, abs=1e-3)
    if student == "halfway":
        assert {u for u, got in by_kit.items() if got == 0} == {
            "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
            "CaptioningRNN.loss (lstm)", "CaptioningRNN.sample (lstm)", "overfit (lstm)"}
    else:
        assert sum(by_kit.values()) == pytest.approx(100)


def test_autograde_keeps_the_students_package(course):
    course, _ = course
    graded = course / "autograded" / "halfway" / "image_captioning" / "captioning" / "rnn_layers.py"
    assert "raise NotImplementedError" in graded.read_text()


def test_feedback_shows_no_hidden_test_and_no_solution(course):
    course, _ = course
    feedback = list((course / "feedback" / "halfway" / "image_captioning").rglob("*"))
    html = [p for p in feedback if p.suffix == ".html"]
    assert len(html) == 2
    released = (ROOT / "release/image_captioning/captioning/rnn_layers.py").read_text()
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
