"""The Gradescope bundle, run as Gradescope runs it: unzipped into an empty fake /autograder root,
its own setup.sh builds its own venv from the system python (once per module: the "image"), then
each test grades one submission with run_autograder in a fresh copy of that image, without
AUTOGRADER_PYTHON, so nothing of the project's venv is used."""
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest


from tests.hostile import make
from tools.bundle import build, canonical
from autograder.course import ASSIGNMENT, RELEASE_DIR, SOLUTIONS_DIR
from autograder.units import TOTAL

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


def clean_env(root):
    """The environment without anything pointing at the project's venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("AUTOGRADER_PYTHON", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
                                  if p and not p.startswith(str(ROOT)))
    env["AUTOGRADER_ROOT"] = str(root)
    return env


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "autograder.zip"
    names = build(out)
    return out, names


@pytest.fixture(scope="module")
def roots():
    """A private (0700) folder for the fake roots: grading must work whatever the modes of the
    folders above the grader and its venv (a course cloned into a home directory)."""
    base = Path(tempfile.mkdtemp(prefix="test-bundle-"))
    assert base.stat().st_mode & 0o077 == 0
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fresh(roots, request):
    """An empty folder for one test's fake root."""
    folder = roots / request.node.name
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def image(bundle, roots):
    """An empty root with the bundle unzipped into source/ and ITS setup.sh run: the built image.
    setup.sh installs from PyPI (~15-30 s): the tests using it are marked slow."""
    root = roots / "image" / "autograder"
    root.mkdir(parents=True)
    for folder in (root.parent, root):
        folder.chmod(0o755)
    with zipfile.ZipFile(bundle[0]) as archive:
        archive.extractall(root / "source")
    proc = subprocess.run(["bash", str(root / "source" / "setup.sh")], env=clean_env(root), cwd=root / "source",
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def test_bundle_contents(bundle):
    _, files = bundle
    assert {"setup.sh", "run_autograder", "requirements-grader.txt", "autograder/grade.py",
            "autograder/hidden.py", "source/image_captioning/captioning/rnn_layers.py"} <= set(files)
    assert not [n for n in files if n.startswith(("tests/", "solutions/", "release/", ".git")) or n.endswith(".ipynb")]
    with zipfile.ZipFile(bundle[0]) as archive:
        requirements = archive.read("requirements-grader.txt").decode().split()
    assert all("==" in line for line in requirements)
    assert set(requirements) <= set((ROOT / "requirements.txt").read_text().split())  # pinned the same
    names = {canonical(line.split("==")[0]) for line in requirements}
    assert {"numpy", "h5py"} <= names  # captioning_solver -> coco_utils imports h5py
    assert "pytest" not in names  # only the pytest front end imports it
    # the caption metrics are bundled with the package but only notebooks import them
    assert "source/image_captioning/captioning/evaluate.py" in files and "pycocoevalcap" not in names


@pytest.mark.slow
def test_setup_builds_venv_from_system_python(bundle, image):
    config = (image / "venv" / "pyvenv.cfg").read_text()
    if Path("/usr/bin/python3").exists():
        assert "home = /usr/bin\n" in config
    assert "include-system-site-packages = false" in config
    freeze = subprocess.run([str(image / "venv" / "bin" / "python"), "-m", "pip", "freeze",
                             "--disable-pip-version-check"], env=clean_env(image), capture_output=True,
                            text=True, check=True).stdout.split()
    with zipfile.ZipFile(bundle[0]) as archive:
        wanted = archive.read("requirements-grader.txt").decode().split()
    assert sorted(map(canonical, freeze)) == sorted(map(canonical, wanted))  # all pinned, nothing else
    assert os.stat(image / "venv" / "bin" / "python").st_mode & 0o005 == 0o005  # the children run it


def run_autograder(image, folder, submission, prepare=None):
    """A fresh container of the image in folder: submission in place, run_autograder run;
    (results.json parsed, its text, the process)."""
    root = folder / "autograder"
    shutil.copytree(image / "source", root / "source")
    shutil.copytree(image / "venv", root / "venv", symlinks=True, copy_function=os.link)
    root.chmod(0o755)
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    os.chmod(root / "run_autograder", 0o755)
    if submission is not None:
        shutil.copytree(submission, root / "submission")
    else:
        (root / "submission").mkdir()
    if prepare:
        prepare(root)
    proc = subprocess.run([str(root / "run_autograder")], env=clean_env(root), capture_output=True, text=True,
                          timeout=300, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    if os.geteuid() == 0:  # the grader and the solution are root-only while grading
        for path in [root / "source", *(root / "source").rglob("*")]:
            assert path.is_symlink() or path.stat().st_mode & 0o077 == 0, path
    text = (root / "results" / "results.json").read_text()
    document = json.loads(text)
    validate(document)
    return document, text, proc


@pytest.mark.slow
def test_answer_key(image, fresh):
    document, _, proc = run_autograder(image, fresh, SOLUTIONS_DIR)
    assert document["score"] == pytest.approx(TOTAL), proc.stdout + proc.stderr
    assert any(t["visibility"] == "after_published" for t in document["tests"])


@pytest.mark.slow
def test_untouched_release(image, fresh):
    document, _, _ = run_autograder(image, fresh, RELEASE_DIR)
    assert document["score"] == 0 and document["tests"]
    assert all(t["score"] == 0 for t in document["tests"])


@pytest.mark.slow
def test_hostile_submission(image, fresh, tmp_path):
    reference = fresh / "autograder" / "source" / ASSIGNMENT / "captioning" / "rnn_layers.py"
    override = f"""
def lstm_step_forward(*args):
    raise ValueError('oops')

def rnn_step_forward(*args):
    import os
    os._exit(1)

def rnn_forward(*args):
    try:
        text = open({str(reference)!r}).read()
    except Exception as exc:
        raise ValueError('blocked: ' + type(exc).__name__)
    raise ValueError('LEAKED ' + text[text.index('BEGIN SOLUTION'):][:300])
"""
    document, text, _ = run_autograder(image, fresh, make(tmp_path / "subs", "hostile", override=override))
    assert 0 < document["score"] < TOTAL
    failed = [t for t in document["tests"] if t["score"] < t["max_score"]]
    assert any("ValueError: oops" in t["output"] for t in failed)
    assert any("exited with code 1" in t["output"] for t in failed)
    assert any("ValueError: blocked" in t["output"] for t in failed)
    assert "LEAKED" not in text and "BEGIN SOLUTION" not in text
    hidden = [t for t in failed if t["visibility"] != "visible"]
    assert hidden and all("\n" not in t["output"].split("\nwarning:")[0] for t in hidden)


@pytest.mark.slow
def test_empty_submission(image, fresh):
    document, _, _ = run_autograder(image, fresh, None)
    assert document["score"] == 0 and "no captioning/ package" in document["output"]


@pytest.mark.slow
def test_grader_crash_removes_stale_results(image, fresh):
    def prepare(root):
        (root / "results").mkdir()
        (root / "results" / "results.json").write_text('{"score": 100, "tests": []}\n')
        main = root / "source" / "autograder" / "__main__.py"
        main.write_text("raise RuntimeError('grader broken on purpose')\n")

    document, _, proc = run_autograder(image, fresh, SOLUTIONS_DIR, prepare)
    assert "grader broken on purpose" in proc.stderr
    assert document["score"] == 0 and document["tests"] == []
    assert "The autograder failed (exit status 1)" in document["output"]
