"""nbgrader's exchange workflow as README.md gives it, with the real commands: staff release the
assignment, a student (another OS user, with their own nbgrader config) lists, fetches, does the work
and submits, staff collect, autograde, generate and release feedback, the student fetches it.
`nbgrader list` works on both sides. The feedback shows the hidden tests' points but not their names
and outputs until staff release them with the one setting in nbgrader_config.py."""
import html
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autograder.course import ASSIGNMENT, SOLUTIONS_DIR
from autograder.intake import STUDENT_FILES
from autograder.reference import all_checks
from autograder.units import RNN_NB

pytestmark = pytest.mark.slow  # real nbgrader commands and one autograde: about a minute

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STUDENT_UID = 65534  # nobody: students are other users than the grader's
HIDDEN = "rnn_step_forward: random inputs, N=1"  # a hidden check of RNN_Captioning.ipynb
PUBLIC = "rnn_step_forward: fixed inputs, rows 0 and 2 of next_h"
STUDENT_CONFIG = 'c = get_config()\nc.Exchange.root = %r\nc.CourseDirectory.course_id = "captioning"\n'


def nbgrader(*args, cwd, env, uid=None):
    """Run an nbgrader command (as uid when given); its log (nbgrader logs to stderr)."""
    user = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"] if uid else []
    proc = subprocess.run(user + [str(BIN / "nbgrader"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, "nbgrader %s failed:\n%s" % (" ".join(args), proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc.stdout + proc.stderr


def feedback(home):
    """The text of the newest fetched feedback of RNN_Captioning.ipynb."""
    newest = sorted((home / ASSIGNMENT / "feedback").iterdir())[-1]
    return html.unescape((newest / RNN_NB).with_suffix(".html").read_text())


def test_exchange_workflow_hides_hidden_tests_until_released(tmp_path, released_course):
    course = tmp_path / "course"
    shutil.copytree(released_course, course, symlinks=True)

    shared = Path(tempfile.mkdtemp(prefix="nbgrader-exchange-"))  # outside the root-only tmp_path
    try:
        shared.chmod(0o755)
        exchange, home = shared / "exchange", shared / "alice"
        exchange.mkdir(mode=0o1777)
        exchange.chmod(0o1777)
        (home / ".jupyter").mkdir(parents=True)
        (home / ".jupyter" / "nbgrader_config.py").write_text(STUDENT_CONFIG % str(exchange))
        shutil.chown(home, STUDENT_UID, STUDENT_UID)
        path = "%s:%s" % (BIN, os.environ["PATH"])
        staff = dict(os.environ, PATH=path, NBGRADER_EXCHANGE=str(exchange))
        student = {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8"}

        assert "Released assignments:" in nbgrader("list", cwd=course, env=staff)
        nbgrader("release_assignment", ASSIGNMENT, cwd=course, env=staff)
        assert "captioning %s\n" % ASSIGNMENT in nbgrader("list", cwd=home, env=student, uid=STUDENT_UID)
        nbgrader("fetch_assignment", ASSIGNMENT, cwd=home, env=student, uid=STUDENT_UID)
        for rel in STUDENT_FILES:  # the student's work: the answer key
            shutil.copyfile(SOLUTIONS_DIR / "captioning" / rel, home / ASSIGNMENT / "captioning" / rel)
        nbgrader("submit", ASSIGNMENT, cwd=home, env=student, uid=STUDENT_UID)
        assert "captioning nobody %s" % ASSIGNMENT in nbgrader("list", "--inbound", cwd=course, env=staff)

        nbgrader("collect", ASSIGNMENT, cwd=course, env=staff)
        nbgrader("autograde", ASSIGNMENT, cwd=course, env=staff)
        nbgrader("generate_feedback", ASSIGNMENT, cwd=course, env=staff)
        nbgrader("release_feedback", ASSIGNMENT, cwd=course, env=staff)
        assert "(feedback ready to be fetched)" in nbgrader("list", "--cached", cwd=home, env=student,
                                                           uid=STUDENT_UID)
        nbgrader("fetch_feedback", ASSIGNMENT, cwd=home, env=student, uid=STUDENT_UID)
        first = feedback(home)
        assert PUBLIC in first and "rnn_step_forward: hidden tests (shown when the course releases them)" in first
        assert HIDDEN in all_checks() and HIDDEN not in first
        assert HIDDEN in (course / "autograded" / "nobody" / ASSIGNMENT / RNN_NB).read_text()  # staff see it

        config = course / "nbgrader_config.py"
        config.write_text(config.read_text().replace("c.HiddenCheckDetails.released = False",
                                                     "c.HiddenCheckDetails.released = True"))
        nbgrader("generate_feedback", ASSIGNMENT, "--force", cwd=course, env=staff)
        nbgrader("release_feedback", ASSIGNMENT, cwd=course, env=staff)
        nbgrader("fetch_feedback", ASSIGNMENT, cwd=home, env=student, uid=STUDENT_UID)
        assert HIDDEN in feedback(home) and "hidden tests (shown when" not in feedback(home)
    finally:
        shutil.rmtree(shared)
