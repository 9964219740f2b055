"""The Gradescope bundle, run as Gradescope runs it: unzipped into an empty fake /autograder root,
its own setup.sh builds its own venv from the system python (once per module: the "image"), then
each test grades one submission with run_autograder in a fresh copy of that image, without
AUTOGRADER_PYTHON, so nothing of the project's venv is used."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from autograder.course import ASSIGNMENT, REFERENCE_PACKAGE, RELEASE_DIR, SOLUTIONS_DIR
from autograder.intake import STUDENT_FILES
from autograder.results import GradingResults
from autograder.sandbox import THROWAWAY_UID_BASE
from autograder.units import BY_NAME, TOTAL, UNITS
from tests import mutants as M
from tests.conftest import run_folder
from tests.hostile import CONTAINER_HOSTILE_UNITS, container_hostile, make, processes
from tools import gradescope_try
from tools.bundle import build, canonical
from tools.gradescope_box import Container, MiB

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
    """The environment of a bundle rooted at root, nothing pointing at the project's venv; pip
    here finds PyTorch's CPU wheel on disk (env: no other network)."""
    return gradescope_try.clean_env(root, TORCH_INDEX_URL="")


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


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    """This test run's folder of set-up images, shared by the pytest-xdist workers."""
    return run_folder(tmp_path_factory) / "gradescope-images"


@pytest.fixture(scope="session")
def image(images):
    """The bundle unzipped into an empty root's source/ and ITS setup.sh run: the built image.
    setup.sh installs from PyPI (a minute): set up once per test run, as `make gradescope-try`
    keeps it, by whichever worker asks first while the others wait; the tests using it are
    marked slow."""
    bundle = images.parent / ("image-autograder-%d.zip" % os.getpid())
    build(bundle)
    return gradescope_try.cached_image(images, bundle, clean_env(images))[0]


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


def test_gradescope_try_sets_up_an_image_once_per_bundle_and_keeps_only_the_newest(tmp_path):
    def bundle(name, said):
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            archive.writestr("setup.sh", 'mkdir "$AUTOGRADER_ROOT/venv"; echo %s' % said)
        return tmp_path / name
    images, env = tmp_path / "images", {"PATH": os.environ["PATH"]}
    first, log, built_now = gradescope_try.cached_image(images, bundle("a.zip", "set up"), env)
    assert built_now and log == "set up\n" and (first / "venv").is_dir() and (first / "source" / "setup.sh").exists()
    assert gradescope_try.cached_image(images, bundle("b.zip", "set up"), env) == (first, "set up\n", False)
    other, _, built_now = gradescope_try.cached_image(images, bundle("a.zip", "set up"), dict(env, TORCH_INDEX_URL=""))
    assert built_now and other != first and (other / "venv").is_dir() and not first.parent.exists()
    assert gradescope_try.cached_image(images, bundle("c.zip", "again"), env)[1:] == ("again\n", True)


@pytest.mark.slow
def test_setup_builds_venv_from_system_python(bundle, image):
    config = (image / "venv" / "pyvenv.cfg").read_text()
    if Path("/usr/bin/python3").exists():
        assert "home = /usr/bin\n" in config
    assert "include-system-site-packages = false" in config
    freeze = subprocess.run([str(image / "venv" / "bin" / "python"), "-m", "pip", "freeze", "--all", "--exclude", "pip",
                             "--disable-pip-version-check"], env=clean_env(image), capture_output=True,
                            text=True, check=True).stdout.split()
    with zipfile.ZipFile(bundle[0]) as archive:
        wanted = archive.read("requirements-grader.txt").decode().split()
    freeze = [line.split("+")[0] for line in freeze]  # torch==2.13.0+cpu is the pin torch==2.13.0's CPU build
    assert sorted(map(canonical, freeze)) == sorted(map(canonical, wanted))  # all pinned, nothing else
    assert os.stat(image / "venv" / "bin" / "python").st_mode & 0o005 == 0o005  # the children run it


def run_autograder(image, folder, submission, prepare=None, container=None):
    """A fresh container of the image in folder: submission in place, run_autograder run (inside
    a tools.gradescope_box.Container when given); (results.json parsed, its text, the process)."""
    text, proc = gradescope_try.run_autograder(image, folder, submission, clean_env(image), container, prepare)
    assert proc.returncode == 0, proc.stderr
    root = folder / "autograder"
    if os.geteuid() == 0:  # the grader and the solution are root-only while grading
        for path in [root / "source", *(root / "source").rglob("*")]:
            assert path.is_symlink() or path.stat().st_mode & 0o077 == 0, path
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
    assert ("upload the zip that `python -m captioning.submit` writes (as it is or unzipped), your assignment "
            "folder, or just the files you edited: rnn.py, transformer.py, net_visualization_pytorch.py, "
            "rnn_layers.py, transformer_layers.py") in document["output"]


def answer_key_upload(folder, layout):
    """The answer key's edited files as Gradescope lays out an upload in /autograder/submission:
    the files dragged on their own (flat, or in a folder) or the zip kept as a zip."""
    folder.mkdir()
    if layout == "zip kept":
        with zipfile.ZipFile(folder / "submission.zip", "w") as archive:
            for path in (SOLUTIONS_DIR / "captioning").rglob("*.py"):
                archive.write(path, path.relative_to(SOLUTIONS_DIR).as_posix())
        return folder
    inner = folder / ("image_captioning" if layout == "files in a folder" else "")
    inner.mkdir(exist_ok=True)
    for name in STUDENT_FILES:
        shutil.copy(SOLUTIONS_DIR / "captioning" / name, inner)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["files dragged", "files in a folder", "zip kept"])
def test_every_reasonable_upload_of_the_answer_key_gets_full_marks(image, fresh, tmp_path, layout):
    document, _, proc = run_autograder(image, fresh, answer_key_upload(tmp_path / "upload", layout))
    assert document["score"] == pytest.approx(TOTAL), (document.get("output"), proc.stderr[-2000:])


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


# ---------------------------------------------------------------- in a container like Gradescope's
# Gradescope's Docker refuses namespaces (bubblewrap cannot start): the grader runs in container mode.
# The box (tools/gradescope_box.py) has Gradescope's shape: 768 MB, half a CPU, read-only cgroups.

@pytest.fixture
def open_root():
    """A folder for one fake root where any uid may pass (as / is on Gradescope): in container mode
    the sandboxed uids reach the venv by its real path; the grader's own files stay root-only."""
    folder = Path(tempfile.mkdtemp(prefix="test-container-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def container():
    """Gradescope's 768 MB and namespace rules with a whole CPU where it gives half: what these tests
    check does not depend on the CPU's share, only how long they take (Gradescope's half CPU is
    kept by README's gradescope-try; bench/container_grading.py times it)."""
    box = Container(cpus=1)
    yield box
    box.close()


def graded_in(container, image, folder, submission):
    """run_autograder in the container: (results.json, {unit: (score, max)}, the process)."""
    document, _, proc = run_autograder(image, folder, submission, container=container)
    layers = document.get("extra_data", {}).get("isolation", [])
    assert layers and layers[0].startswith("container mode"), (document.get("output"), proc.stderr[-2000:])
    return document, GradingResults.from_document(document).by_unit(), proc


def lost(scores):
    return {unit for unit, (got, top) in scores.items() if got < top - 1e-9}


@pytest.mark.slow
@pytest.mark.parametrize("submission,score", [(SOLUTIONS_DIR, TOTAL), (RELEASE_DIR, 0)], ids=["key", "release"])
def test_container_grades_the_answer_key_and_the_release(image, open_root, submission, score):
    """In 512 MB (Gradescope gives 768): no out-of-memory kill, the whole score (a whole CPU: the
    memory a grade takes does not depend on its share)."""
    container = Container(memory=512 * MiB, cpus=1)
    try:
        document, _, proc = graded_in(container, image, open_root, submission)
        assert container.oom_kills == 0 and container.peak_mb <= 512
    finally:
        container.close()
    assert document["score"] == pytest.approx(score), proc.stderr[-2000:]
    assert "bwrap: Creating new namespace failed" in document["extra_data"]["isolation"][0]  # really Docker-like
    assert document["output"].startswith("Graded automatically: %d parts" % len(UNITS))  # what students read first
    assert "bwrap" not in document["output"] and "namespace" not in document["output"]


@pytest.mark.slow
def test_a_machine_too_small_fails_the_grade_and_never_blames_the_student(image, open_root):
    """Out of memory before any student function ran, twice, and the reference package's import in its
    place too: a grader-side failure (Gradescope shows staff's message, staff grade again), not points
    lost."""
    box = Container(memory=300 * MiB, cpus=1)
    try:
        document, _, proc = run_autograder(image, open_root, SOLUTIONS_DIR, container=box)
        assert box.oom_kills >= 1
    finally:
        box.close()
    assert document["tests"] == [] and "The autograder failed (exit status 3)" in document["output"]
    assert "the grading machine ran out of memory" in proc.stderr
    assert "once more importing the reference package in its place" in proc.stderr


@pytest.mark.slow
def test_a_submission_too_large_to_import_loses_its_points(image, open_root, container, tmp_path):
    """2 GB allocated when rnn_layers is imported, in the 768 MB box: killed twice before any function
    ran, but the reference package imports in its place, so the submission is at fault: a grade of 0
    whose every check says why (it used to fail the grade as the machine's fault)."""
    prelude = "import numpy\n_hoard = [numpy.ones(1 << 20) for _ in range(250)]  # every page touched\n"
    document, _, proc = graded_in(container, image, open_root, make(tmp_path, "hoard", prelude=prelude))
    assert container.oom_kills >= 2 and document["score"] == 0 and document["tests"], proc.stderr[-2000:]
    why = ("killed (SIGKILL) twice while importing your package, where the reference package imports: most likely "
           "out of memory, more than this grading machine can give it (768 MB")
    assert all(t["output"].startswith("FAIL: " + why) for t in document["tests"]), document["tests"][0]


@pytest.mark.slow
def test_container_endless_loop_costs_one_unit(image, open_root, container, tmp_path):
    loop = make(tmp_path, "loop", override="\ndef rnn_step_forward(*args):\n    while True:\n        pass\n")
    document, scores, _ = graded_in(container, image, open_root, loop)
    assert lost(scores) == {"rnn_step_forward"}, scores
    assert document["score"] == pytest.approx(TOTAL - BY_NAME["rnn_step_forward"].points)


SNOOP = """
import ctypes, os, socket, subprocess, threading, time
found = ["uid=%d" % os.getuid()]

def attempt(label, action):
    try:
        action()
        found.append("DID " + label)
    except Exception as exc:  # in short: the message has room for 300 characters
        found.append("%s:%s" % (label, "EPERM" if isinstance(exc, PermissionError) else type(exc).__name__))

def read(path):
    with open(path, "rb") as f:
        f.read(1)

def write(path):
    with open(path, "w") as f:
        f.write("x")

for i, path in enumerate({reads!r}):
    attempt("r%d" % i, lambda: read(path))
attempt("ls", lambda: os.listdir({source!r}))
for i, path in enumerate({writes!r}):
    attempt("w%d" % i, lambda: write(path))
attempt("inet", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=1))
attempt("unix", lambda: socket.socket(socket.AF_UNIX))
attempt("env", lambda: read("/proc/%d/environ" % os.getppid()))
attempt("mem", lambda: read("/proc/%d/mem" % os.getppid()))
attempt("exec", lambda: subprocess.run(["/bin/true"]))


def lower_oom_score():  # so that the kernel, out of memory, would kill the grader first
    if ctypes.CDLL(None).prctl(4, 1, 0, 0, 0) != 0:  # PR_SET_DUMPABLE: /proc/self its own again
        raise PermissionError("prctl")
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("0")
attempt("oom", lower_oom_score)
for folder in ("/tmp", "/dev/shm", "/var/tmp"):
    try:
        write(folder + "/litter-of-a-student")  # allowed: removed after the grade
    except OSError:
        pass
if os.fork() == 0:  # a daemon that outlives its child, its main thread gone: killed after the grade
    os.setsid()
    if os.fork() == 0:
        threading.Thread(target=time.sleep, args=(300,)).start()
        ctypes.CDLL(None).pthread_exit(None)
    os._exit(0)
"""


@pytest.mark.slow
def test_container_holds_against_a_snooping_submission(image, open_root, container, tmp_path):
    root = open_root / "autograder"
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        prelude = SNOOP.format(
            reads=[str(root / "source" / "source" / ASSIGNMENT / "captioning" / "rnn_layers.py"),
                   str(root / "source" / "autograder" / "hidden.py"), "/etc/shadow"],
            source=str(root / "source"), port=listener.getsockname()[1],
            writes=[str(root / "results" / "results.json"), str(root / "source" / "x"),
                    str(root / "venv" / "bin" / "x"), str(root / "submission" / "x"), "/etc/x"])
        override = "\ndef rnn_step_forward(*args):\n    raise RuntimeError(' '.join(found + ['end']))\n"
        document, scores, _ = graded_in(container, image, open_root, make(tmp_path, "snoop", prelude, override))
    finally:
        listener.close()
    assert lost(scores) == {"rnn_step_forward"}, scores  # the snooping costs nothing else
    reports = [t["output"] for t in document["tests"] if t["tags"] == ["rnn_step_forward"]]
    assert reports and all("RuntimeError: uid=" in r for r in reports), reports
    for report in reports:
        assert "DID " not in report, report
        for attempt in ("r0", "r1", "r2", "ls", "w0", "w1", "w2", "w3", "w4", "inet", "unix", "env", "mem", "exec",
                        "oom"):
            assert " %s:EPERM " % attempt in report, (attempt, report)
    uids = {int(u) for u in re.findall(r"uid=(\d+)", " ".join(reports))}
    assert uids and min(uids) >= THROWAWAY_UID_BASE
    grader = {(u - THROWAWAY_UID_BASE) >> 16 for u in uids}  # the throwaway uids of that grading process
    assert not processes(lambda u: u >= THROWAWAY_UID_BASE and (u - THROWAWAY_UID_BASE) >> 16 in grader)
    for folder in ("/tmp", "/dev/shm", "/var/tmp"):
        assert not Path(folder, "litter-of-a-student").exists(), folder
    assert not [p for p in Path("/tmp").glob("grade-box-*") if (p.stat().st_gid - THROWAWAY_UID_BASE) >> 16 in grader]


@pytest.mark.slow
def test_container_hostile_submission_costs_its_units_only(image, open_root, container, tmp_path):
    """A fork flood, a memory bomb past the box's 768 MB, endless loops in two more units and a
    real-time signal in a fifth: those units lose their points, the grader survives (the kernel
    kills sandboxed processes first) and writes results.json inside the bundle's time budget."""
    submission = container_hostile(tmp_path)
    document, scores, proc = graded_in(container, image, open_root, submission)
    assert lost(scores) == CONTAINER_HOSTILE_UNITS
    assert container.peak_mb <= 768 and container.oom_kills >= 1, proc.stderr[-2000:]
    assert document["execution_time"] < 420


@pytest.mark.slow
def test_container_without_a_way_to_change_uid_refuses(image, open_root):
    box = Container(drop="cap_sys_admin,cap_setuid,cap_setgid")
    try:
        document, _, proc = run_autograder(image, open_root, SOLUTIONS_DIR, container=box)
    finally:
        box.close()
    assert document["score"] == 0 and document["tests"] == []
    assert "The autograder failed (exit status 3)" in document["output"]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("cannot grade:")]
    assert len(lines) == 1 and "cannot run student code as another uid" in lines[0], proc.stderr


def batch_in_box(image, open_root, tmp_path, submissions, box, units, workers=2):
    """`batch --min-isolation container` of the submissions in the box, with the bundle's venv and a
    root-only copy of the kit; {name: {unit: (score, max)}}."""
    kit = open_root / "kit"
    shutil.copytree(ROOT / "autograder", kit / "autograder", ignore=shutil.ignore_patterns("__pycache__"))
    package = REFERENCE_PACKAGE.relative_to(ROOT)
    shutil.copytree(REFERENCE_PACKAGE, kit / package, ignore=shutil.ignore_patterns("__pycache__"))
    kit.chmod(0o700)
    shutil.copytree(image / "venv", open_root / "venv", symlinks=True, copy_function=os.link)
    for sub in submissions:
        sub.build(tmp_path / "subs" / sub.name)
    argv = [open_root / "venv" / "bin" / "python", "-m", "autograder", "batch", tmp_path / "subs",
            "--out", tmp_path / "out", "--workers", str(workers), "--min-isolation", "container",
            "--units", ",".join(units)]
    proc = subprocess.run(box.command(argv), env=box.env(clean_env(open_root)), cwd=kit, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "isolation: container mode" in proc.stderr
    return {sub.name: GradingResults.from_document(json.loads((tmp_path / "out" / sub.name / "results.json")
                                                              .read_text())).by_unit() for sub in submissions}


@pytest.mark.slow
def test_container_gives_correct_variants_of_every_file_full_marks(image, open_root, tmp_path):
    """A correct variant of each file students edit, graded by `batch --min-isolation container` in
    the box (all CPUs: the point is the layers; tests/test_corpus.py grades every variant)."""
    picks = {}
    for sub in M.ALTERNATIVES:
        picks.setdefault(sub.edits[0].file, sub)
    box = Container(cpus=2, memory=4096 * MiB)
    try:
        scores = batch_in_box(image, open_root, tmp_path, list(picks.values()), box,
                              [u.name for u in UNITS if not u.training])
    finally:
        box.close()
    assert len(picks) == len(STUDENT_FILES)
    for sub in picks.values():
        assert not lost(scores[sub.name]), (sub.name, scores[sub.name])


@pytest.mark.slow
def test_container_grades_mistakes_of_every_notebook_in_512_mb_without_an_out_of_memory_kill(
        image, open_root, tmp_path):
    """In 512 MB with 2 CPUs, each grade runs one sandboxed process at a time (less than 1 GiB usable),
    and the mistakes' diagnosis runs in the grader: no kill, and each mistake (one of each notebook,
    the network visualization's included) loses exactly its units."""
    picks = {}
    for sub in M.MUTANTS:
        picks.setdefault(BY_NAME[sorted(sub.lost)[0]].notebook, sub)
    box = Container(cpus=2, memory=512 * MiB)
    try:
        scores = batch_in_box(image, open_root, tmp_path, list(picks.values()), box,
                              [u.name for u in UNITS if not u.training], workers=1)
        assert box.oom_kills == 0, box.peak_mb
    finally:
        box.close()
    assert len(picks) == 4
    for sub in picks.values():
        assert lost(scores[sub.name]) == set(sub.lost), (sub.name, scores[sub.name])


# ---------------------------------------------------------------- the Python versions of Gradescope's images
# Gradescope's default image (Ubuntu 22.04) has Python 3.10; newer images 3.11 and 3.12.

def python310():
    """A real Python 3.10 interpreter of this machine (pyenv's: /root/.pyenv/versions/3.10.*)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted(root.glob("versions/3.10.*/bin/python3.10")) or [Path(p) for p in [shutil.which("python3.10")] if p]
    assert found, "these tests need a Python 3.10 (pyenv install 3.10)"
    return found[-1]


def closed_above(path):
    """The folder on path's way just below the first folder other uids may not pass (/root/.pyenv for
    /root/.pyenv/versions/...), or None: the box opens it to them, as Gradescope's image has its
    Python in /usr."""
    for folder in reversed(path.parents):
        if folder != folder.parent and not folder.parent.stat().st_mode & 0o001:
            return folder
    return None


@pytest.mark.slow
def test_grader_pins_resolve_on_python_3_12_and_3_13(bundle):
    """pip, asked for each version's wheels, finds every pin of the grader (a pin whose release
    needs Python >= 3.11 made setup.sh fail on Gradescope's default image). The bundle is set up
    for real on 3.10 (image310) and on this machine's 3.11 (image)."""
    with zipfile.ZipFile(bundle[0]) as archive:
        requirements = archive.read("requirements-grader.txt").decode()
    folder = Path(tempfile.mkdtemp(prefix="test-pins-"))
    (folder / "requirements.txt").write_text(requirements)
    try:
        runs = {version: subprocess.Popen(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
             "--only-binary=:all:", "--python-version", version, "--target", str(folder / version),
             "-r", str(folder / "requirements.txt")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for version in ("3.12", "3.13")}
        failed = {version: run.communicate(timeout=600)[0][-1500:] for version, run in runs.items() if run.wait()}
    finally:
        shutil.rmtree(folder)
    assert not failed, failed


@pytest.fixture(scope="module")
def image310(bundle, roots):
    """The bundle set up by its setup.sh with a real Python 3.10 as the system's python3. PyTorch's CPU
    index is out of reach here, so pip takes PyPI's torch for 3.10, the CUDA build (2.6 GB to fetch,
    about 3 minutes, 4.8 GB installed; its import takes 490 MB where the CPU build's takes 220)."""
    root = roots / "image310" / "autograder"
    gradescope_try.build_image(root, bundle[0], clean_env(root) | {"AUTOGRADER_BASE_PYTHON": str(python310())})
    return root


@pytest.mark.slow
@pytest.mark.parametrize("submission,score", [(SOLUTIONS_DIR, TOTAL), (RELEASE_DIR, 0)], ids=["key", "release"])
def test_bundle_on_python_3_10_grades_the_answer_key_and_the_release(image310, open_root, submission, score):
    assert "version = 3.10." in (image310 / "venv" / "pyvenv.cfg").read_text()
    opened = closed_above(python310())
    box = Container(memory=2048 * MiB, cpus=2, reachable=[opened] if opened else [])  # the CUDA build's memory
    try:
        document, _, proc = graded_in(box, image310, open_root, submission)
        assert box.oom_kills == 0
    finally:
        box.close()
    assert document["score"] == pytest.approx(score), proc.stderr[-2000:]


@pytest.mark.slow
def test_readme_gradescope_try_grades_as_pasted_in_the_image_it_keeps(image, images, tmp_path):
    """`make gradescope-try SUBMISSION=...` as README.md gives it: the score, time and peak memory;
    the image the other tests graded in is the one it set up and kept (IMAGES=, where they are)."""
    line = re.search(r"^ *(make gradescope-try SUBMISSION=\S+)", (ROOT / "README.md").read_text(), re.M).group(1)
    assert line == "make gradescope-try SUBMISSION=solutions/image_captioning"
    env = clean_env(tmp_path) | {"MAKEFLAGS": ""}  # PyTorch's CPU index is out of reach here: pip's own
    proc = subprocess.run(["bash", "-c", line + " OUT=%s IMAGES=%s" % (tmp_path, images)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    score = re.search(r"^score (\S+)/(\S+) in \S+ s; box peak memory (\d+) MB of 768, (\d+) out-of-memory kill",
                      proc.stdout, re.M)
    assert score and float(score[1]) == float(score[2]) == TOTAL, proc.stdout
    assert 0 < int(score[3]) <= 768 and score[4] == "0"
    assert "its image is set up already, in %s" % image.parent in proc.stdout, proc.stdout
    assert json.loads((tmp_path / "results.json").read_text())["score"] == pytest.approx(TOTAL)
