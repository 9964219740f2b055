"""The Gradescope bundle, run for real in a fake /autograder root (the repo's venv stands in for
the one setup.sh would build)."""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.hostile import make
from tools.bundle import build

ROOT = Path(__file__).resolve().parent.parent
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def validate(document):
    """Gradescope's documented results.json schema (the parts we use)."""
    assert isinstance(document["score"], (int, float))
    assert isinstance(document["tests"], list)
    for test in document["tests"]:
        assert set(test) <= {"name", "score", "max_score", "output", "visibility", "number", "status", "tags"}
        assert isinstance(test["name"], str) and isinstance(test["output"], str)
        assert isinstance(test["score"], (int, float)) and isinstance(test["max_score"], (int, float))
        assert 0 <= test["score"] <= test["max_score"] + 1e-9
        assert test["visibility"] in VISIBILITY
    if document["tests"]:
        assert document["score"] == pytest.approx(sum(t["score"] for t in document["tests"]), abs=1e-3)
    assert set(document) <= {"score", "execution_time", "output", "tests", "visibility", "stdout_visibility",
                             "extra_data", "leaderboard"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "autograder.zip"
    names = build(out)
    return out, names


def test_bundle_contents(bundle):
    _, names = bundle
    assert {"setup.sh", "run_autograder", "requirements-grader.txt", "autograder/grade.py",
            "autograder/hidden.py", "source/image_captioning/captioning/rnn_layers.py"} <= set(names)
    assert not [n for n in names if n.startswith(("tests/", "solutions/", "release/", ".git")) or n.endswith(".ipynb")]
    with zipfile.ZipFile(bundle[0]) as archive:
        assert archive.read("requirements-grader.txt").decode().startswith("numpy==")


def run_autograder(bundle, tmp_path, submission):
    """Unpack like Gradescope, put submission in place, run run_autograder: results.json."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    os.chmod(root / "run_autograder", 0o755)
    if submission is not None:
        shutil.copytree(submission, root / "submission")
    else:
        (root / "submission").mkdir()
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(root / "run_autograder")], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    if os.geteuid() == 0:
        assert (root / "source").stat().st_mode & 0o077 == 0  # the grader is root-only while grading
    return json.loads((root / "results" / "results.json").read_text())


def test_correct_submission(bundle, tmp_path):
    document = run_autograder(bundle[0], tmp_path, make(tmp_path / "subs", "key"))
    validate(document)
    assert document["score"] == pytest.approx(100)
    assert any(t["visibility"] == "after_published" for t in document["tests"])


def test_broken_submission(bundle, tmp_path):
    override = "\ndef lstm_step_forward(*args):\n    raise ValueError('oops')\n\ndef rnn_step_forward(*args):\n    import os\n    os._exit(1)\n"
    document = run_autograder(bundle[0], tmp_path, make(tmp_path / "subs", "broken", override=override))
    validate(document)
    assert 0 < document["score"] < 100
    failed = [t for t in document["tests"] if t["score"] < t["max_score"]]
    assert any("ValueError: oops" in t["output"] for t in failed)
    assert any("exited with code 1" in t["output"] for t in failed)
    hidden = [t for t in failed if t["visibility"] != "visible"]
    assert hidden and all("\n" not in t["output"].split("\nwarning:")[0] for t in hidden)


def test_empty_submission(bundle, tmp_path):
    document = run_autograder(bundle[0], tmp_path, None)
    validate(document)
    assert document["score"] == 0 and "no captioning/ package" in document["output"]
