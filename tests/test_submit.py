"""`python -m captioning.submit`, run by a student in a copy of the release: checks, summary, the
code zip with exactly the files the grader reads plus the notebooks, the written answers as PDF;
loud and leaving no half-made file when it cannot finish."""
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from autograder.course import PACKAGE, RELEASE_DIR, SOLUTIONS_DIR, notebooks
from autograder.intake import STUDENT_FILES
from autograder.units import UNITS

CODE, PDF = "image_captioning_code.zip", "image_captioning_written.pdf"
SUBMITTED = sorted(["%s/%s" % (PACKAGE, rel) for rel in STUDENT_FILES] + notebooks())


def submit(folder, *args, env=None):
    """The student's command, run in their assignment folder."""
    return subprocess.run([sys.executable, "-m", "captioning.submit", *args], cwd=folder, capture_output=True,
                          text=True, timeout=600, env=env)


@pytest.fixture
def half_done(tmp_path):
    """The release with the RNN layers written (the answer key's rnn_layers.py), nothing else."""
    folder = tmp_path / "image_captioning"
    shutil.copytree(RELEASE_DIR, folder)
    shutil.copy(SOLUTIONS_DIR / PACKAGE / "rnn_layers.py", folder / PACKAGE / "rnn_layers.py")
    return folder


@pytest.mark.slow
def test_half_done_release_is_checked_summarised_and_packed(half_done):
    proc = submit(half_done)
    assert proc.returncode == 0, proc.stderr
    summary = proc.stdout.split("=== Summary")[1]
    passing = [u.name for u in UNITS if u.name.startswith(("rnn_", "lstm_", "word_embedding"))]
    assert "Public checks: %d of %d units pass" % (len(passing), len(UNITS)) in summary, proc.stdout
    failing = summary.split("not passing yet: ")[1].split("\n")[0].split(", ")
    assert set(failing) == {u.name for u in UNITS} - set(passing)
    assert "Written answers: left empty: RNN_Captioning.ipynb (char_vs_word)" in summary
    with zipfile.ZipFile(half_done / CODE) as archive:
        assert sorted(archive.namelist()) == SUBMITTED
        for name in SUBMITTED:
            assert archive.read(name) == (half_done / name).read_bytes()
    assert (half_done / PDF).read_bytes()[:5] == b"%PDF-"
    html = (half_done / PDF).with_suffix(".html").read_text()
    assert "Why a sigmoid?" in html and "YOUR ANSWER HERE" in html  # the questions and the (empty) answers


def test_a_missing_notebook_stops_it_with_one_line_and_no_zip(half_done):
    (half_done / "LSTM_Captioning.ipynb").unlink()
    proc = submit(half_done)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("submit: LSTM_Captioning.ipynb is missing from %s: it must stay next to "
                                   "captioning/" % half_done)
    assert not (half_done / CODE).exists() and not (half_done / PDF).exists()


@pytest.mark.slow
def test_a_broken_notebook_or_browser_stops_it(half_done):
    (half_done / "RNN_Captioning.ipynb").write_text("{ not json")
    proc = submit(half_done)
    assert proc.returncode == 1 and "RNN_Captioning.ipynb is not a readable notebook" in proc.stderr
    shutil.copy(RELEASE_DIR / "RNN_Captioning.ipynb", half_done)
    proc = submit(half_done, "--browser", "/bin/false")
    assert proc.returncode == 1  # the summary and the zip all the same, and what to do
    assert "=== Summary" in proc.stdout and "Wrote %s (9 files)" % (half_done / CODE) in proc.stdout
    assert proc.stderr.startswith("submit: no %s (/bin/false wrote no PDF (exit status 1" % PDF), proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.rstrip().endswith(
        "%s is complete: upload it; for the written answers, print %s to PDF from any browser."
        % (CODE, (half_done / PDF).with_suffix(".html")))
    assert not (half_done / PDF).exists() and not list(half_done.glob(".*.part"))


@pytest.mark.slow
def test_without_a_browser_the_pdf_is_made_in_python(half_done):
    """Colab, a server, a laptop without Chrome: PATH holds only the venv (issue #27)."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable))
    assert not any(shutil.which(b, path=env["PATH"]) for b in ("chromium", "google-chrome", "msedge"))
    proc = submit(half_done, env=env)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    assert "Wrote %s: upload it to the written-answers assignment." % (half_done / PDF) in proc.stdout
    pdf = (half_done / PDF).read_bytes()
    assert pdf[:5] == b"%PDF-" and pdf.count(b"/Type /Page\n") >= 2, pdf[:2000]


def test_the_checks_run_on_one_blas_thread_in_a_students_shell(half_done):
    """A student's shell sets no BLAS thread count: submit sets one before the checks load numpy, as
    the notebooks' first cells do (more threads only slowed the checks' small matrices down)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    code = "import os, captioning.submit, numpy; print(len(os.listdir('/proc/self/task')))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=half_done, env=env, capture_output=True, text=True)
    assert proc.stdout.split() == ["1"], proc.stdout + proc.stderr
    assert os.cpu_count() > 1  # else numpy would start no thread of its own either
