"""The grader's pytest front end never lets pytest import or collect anything of the submission.

The submission is the untouched release (every check fails: a known outcome) plus a conftest.py at
three levels, a test file and the five files pytest reads its settings from, each loading a plugin
of the submission's: any of them run by pytest writes a marker file. Only pytest runs here, as
the grading user: what it must not run are these files (the grading itself is sandboxed).
"""
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from autograder.course import RELEASE_DIR, ROOT
from autograder.reference import all_checks

README_COMMAND = re.compile(r"`(\.venv/bin/python -m pytest autograder/front [^`]*)`")
INI = {"pytest.ini": "[pytest]\n", "tox.ini": "[pytest]\n", "setup.cfg": "[tool:pytest]\n",
       "pyproject.toml": "[tool.pytest.ini_options]\n"}


def hostile_submission(tmp_path, where):
    """(where/submission, the folder its files write markers to)."""
    folder, markers = where / "submission", tmp_path / "markers"
    shutil.copytree(RELEASE_DIR, folder)
    markers.mkdir()

    def writes(name):
        return "open(%r, 'w').write('ran')\n" % str(markers / name)
    for rel in ("conftest.py", "captioning/conftest.py", "tests/conftest.py"):
        (folder / rel).parent.mkdir(exist_ok=True)
        (folder / rel).write_text(writes(rel.replace("/", "-")))
    (folder / "tests" / "test_grade.py").write_text(writes("test_grade.py") + "def test_x():\n    pass\n")
    for name, section in INI.items():
        plugin = "plugin_" + name.replace(".", "_")
        (folder / (plugin + ".py")).write_text(writes(name))
        quote = '"' if name.endswith(".toml") else ""
        (folder / name).write_text(section + "addopts = %s-p %s%s\npythonpath = %s.%s\n"
                                   % (quote, plugin, quote, quote, quote))
    return folder, markers


def run_pytest(args):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_readme_command_grades_the_submission_and_imports_none_of_it(tmp_path):
    folder, markers = hostile_submission(tmp_path, tmp_path)
    command = README_COMMAND.search((ROOT / "README.md").read_text()).group(1)
    command = command.replace("SUBMISSION", str(folder)).replace("[--public]", "--public")
    proc = run_pytest(shlex.split(command) + ["-p", "no:cacheprovider"])
    assert sorted(p.name for p in markers.iterdir()) == []
    public = [t for t, c in all_checks().items() if c.public]
    assert proc.returncode == 1 and "%d failed" % len(public) in proc.stdout, proc.stdout[-2000:] + proc.stderr
    assert "not implemented yet" in proc.stdout


def test_the_two_word_form_is_refused_before_pytest_reads_the_folder(tmp_path):
    folder, markers = hostile_submission(tmp_path, tmp_path)
    proc = run_pytest([sys.executable, "-m", "pytest", "autograder/front", "--submission", str(folder), "-p",
                       "no:cacheprovider"])
    assert proc.returncode == 4 and "write --submission=DIR as one word" in proc.stderr, proc.stderr
    assert sorted(p.name for p in markers.iterdir()) == []


def test_a_submission_inside_a_collected_folder_is_refused(tmp_path):
    folder, markers = hostile_submission(tmp_path, tmp_path / "collected")
    proc = run_pytest([sys.executable, "-m", "pytest", "autograder/front", str(tmp_path / "collected"),
                       "--submission=%s" % folder, "-p", "no:cacheprovider"])
    assert proc.returncode == 4 and "which pytest collects" in proc.stderr, proc.stderr
    assert sorted(p.name for p in markers.iterdir()) == []
