"""The release on its own, as a student gets it: copied into an empty folder, its README followed
as pasted (its own Python environment from PyPI, its own data), the notebooks run to their first
TODO, then the answer key's work submitted with the README's command and the zip graded through
the Gradescope bundle. The README's numbers are the kit's."""
import json
import os
import re
import runpy
import shutil
import subprocess
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograder.course import PACKAGE, RELEASE_DIR, ROOT, SOLUTIONS_DIR, notebooks
from autograder.intake import STUDENT_FILES
from autograder.units import TOTAL, UNITS, WRITTEN
from source.image_captioning.captioning.net_visualization_utils import EMBEDDED_DIR, EMBEDDED_FILES
from tests import test_bundle, test_datasets
from tests.test_bundle import clean_env, run_autograder
from tools.bundle import canonical

# Their fixtures, used here: the bundle's built image and a fresh root for one grade; the COCO stand-in.
bundle, roots, images, image, fresh = (test_bundle.bundle, test_bundle.roots, test_bundle.images, test_bundle.image,
                                     test_bundle.fresh)
server, real_zip = test_datasets.server, test_datasets.real_zip

README = RELEASE_DIR / "README.md"
SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else shutil.which("python3")


def readme_commands(section):
    """The ```sh blocks of one '## section' of the student README, in order."""
    part = README.read_text().split("\n## " + section + "\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```$", part, re.M | re.S)


def written_points():
    """{grade_id: points} of the hand-graded answer cells of the released notebooks."""
    return {cell.metadata.nbgrader["grade_id"]: cell.metadata.nbgrader["points"] for name in notebooks()
            for cell in nbformat.read(RELEASE_DIR / name, as_version=4).cells
            if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("grade")}


def test_readme_python_is_the_oldest_the_pinned_packages_accept():
    from importlib import metadata

    from packaging.specifiers import SpecifierSet
    pins = [line.split("==")[0] for line in (RELEASE_DIR / "requirements.txt").read_text().split()
            if "==" in line and not line.startswith("#")]
    accepted = [SpecifierSet(metadata.metadata(name).get("Requires-Python") or "") for name in pins]
    oldest = next(minor for minor in range(8, 20) if all("3.%d.0" % minor in spec for spec in accepted))
    assert "- Python 3.%d to 3.13 with its `venv` module" % oldest in README.read_text()


def test_readme_points_are_the_kits():
    text = " ".join(README.read_text().split())
    assert written_points() == WRITTEN
    written = sum(WRITTEN.values())
    assert "%d points: %d autograded and %d for the five written questions" % (TOTAL + written, TOTAL, written) in text
    by_notebook = {name: sum(u.points for u in UNITS if u.notebook == name) for name in notebooks()}
    assert "RNN %d, LSTM %d, Transformer %d" % (by_notebook["RNN_Captioning.ipynb"], by_notebook[
        "LSTM_Captioning.ipynb"], by_notebook["Transformer_Captioning.ipynb"]) in text
    staff = " ".join((RELEASE_DIR.parents[1] / "README.md").read_text().split())
    assert "written questions add %d points graded by hand (2 each, `WRITTEN` in `units.py`): %d in all" % (
        written, TOTAL + written) in staff and "answer key's score (%d/%d)" % (TOTAL, TOTAL) in staff
    for name in notebooks():
        assert "worth %d points: %d autograded" % (TOTAL + written, TOTAL) in " ".join(
            nbformat.read(RELEASE_DIR / name, as_version=4).cells[0].source.split())


NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
COUNTED = re.compile(r"\b(\w+) (?:code )?(notebooks|files|(?:written )?questions)\b")


def stated(word):
    """The number a word of COUNTED states, or None."""
    return NUMBERS.get(word, int(word) if word.isdigit() else None)


def test_student_texts_list_the_kits_files_and_notebooks():
    """The lists come from units.py and the package (issue #27): submit packs what the grader reads,
    the README names each file and notebook, and no text counts them otherwise."""
    edited = ["%s/%s" % (PACKAGE, rel) for rel in STUDENT_FILES]
    units = runpy.run_path(str(RELEASE_DIR / PACKAGE / "units.py"))
    assert sorted(units["EDITED"]) == edited and sorted(units["NOTEBOOKS"]) == notebooks()
    text = " ".join(README.read_text().split())
    assert "{{" not in text and all("`%s`" % name in text for name in edited + notebooks())
    assert "the %d notebooks in order" % len(notebooks()) in text and "in %d files" % len(edited) in text
    counts = {"notebooks": len(notebooks()), "files": len(edited), "questions": len(WRITTEN),
              "written questions": len(WRITTEN)}
    texts = {"README.md": README.read_text(), "the kit's README.md": (RELEASE_DIR.parents[1] / "README.md").read_text(),
             "submit.py": (RELEASE_DIR / PACKAGE / "submit.py").read_text()}
    texts.update((name, nbformat.read(RELEASE_DIR / name, as_version=4).cells[0].source) for name in notebooks())
    said = [(where, m) for where, t in texts.items() for m in COUNTED.finditer(" ".join(t.split()))]
    wrong = [(where, m.group(0)) for where, m in said if stated(m.group(1)) not in (None, counts[m.group(2)])]
    assert not wrong


def test_linux_students_get_pytorchs_cpu_build():
    requirements = (RELEASE_DIR / "requirements.txt").read_text().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    assert [line for line in requirements if line.startswith("torch==")] == ["torch==2.13.0"]
    assert "`--extra-index-url https://download.pytorch.org/whl/cpu`" in " ".join(README.read_text().split())


RUN_TO_FIRST_TODO = r"""
import json, sys
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

report = {}
for name in sys.argv[1:]:
    notebook = nbformat.read(name, as_version=4)
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    except CellExecutionError:
        pass
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    report[name] = [{"source": c.source, "errors": [o.ename for o in c.get("outputs", []) if o.output_type == "error"],
                     "text": "".join(o.get("text", "") for o in c.get("outputs", []))} for c in cells]
print(json.dumps(report))
"""


def student_env(home, venv=None):
    """A student's shell: a fresh home, nothing of the kit's environment (make's BLAS thread count
    neither); the venv activated when given."""
    env = clean_env(home)
    for var in ("AUTOGRADER_ROOT", "CAPTIONING_DATASETS", "OPENBLAS_NUM_THREADS"):
        env.pop(var, None)
    # PIP_RETRIES=0: PyTorch's index (requirements.txt) is out of reach here; pip skips it at once.
    env.update(HOME=str(home), PIP_CACHE_DIR=os.path.expanduser("~/.cache/pip"), PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_RETRIES="0")
    if venv:
        env.update(VIRTUAL_ENV=str(venv), PATH=str(venv / "bin") + os.pathsep + env["PATH"])
    return env


def run(block, folder, env):
    """One README block, pasted into bash in the assignment folder."""
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, (block, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


@pytest.mark.slow
def test_the_release_alone_sets_up_runs_and_submits_for_full_marks(tmp_path, image, fresh, server, real_zip):
    folder, home = tmp_path / "image_captioning", tmp_path / "home"
    home.mkdir()
    shutil.copytree(RELEASE_DIR, folder)  # all a student gets
    assert shutil.which("python3", path=student_env(home)["PATH"]) and SYSTEM_PYTHON
    (setup,) = readme_commands("Set up (once)")
    run(setup, folder, student_env(home))
    env = student_env(home, folder / ".venv")
    installed = run("python -m pip list --format=freeze", folder, env).stdout.lower()
    assert "torch==2.13.0+cpu" in installed and "nvidia" not in installed  # no CUDA build
    pins = [line for line in (folder / "requirements.txt").read_text().split() if "==" in line]
    freeze = [line.split("+")[0] for line in installed.split() if not line.startswith("pip==")]
    assert sorted(map(canonical, freeze)) == sorted(map(canonical, pins))  # all pinned (extras' too), nothing else
    mini, real = readme_commands("Get the data")
    run(mini, folder, env)
    built, made = folder / "datasets" / EMBEDDED_DIR, ROOT / "datasets" / EMBEDDED_DIR  # the student's, make data's
    assert EMBEDDED_FILES == ("shapes_cnn.pt", "shapes_val_25.npz")
    assert (built / "shapes_cnn.pt").read_bytes() == (made / "shapes_cnn.pt").read_bytes()  # same torch, one thread
    with np.load(built / "shapes_val_25.npz") as mine, np.load(made / "shapes_val_25.npz") as theirs:
        assert sorted(mine) == sorted(theirs) and all(np.array_equal(mine[k], theirs[k]) for k in mine)  # the arrays:
        # the zip around them is the Python's (its zipfile's header fields differ between 3.11.2 and 3.11.7)

    report = json.loads(run("python - " + " ".join(notebooks()) + " <<'EOF'\n" + RUN_TO_FIRST_TODO + "\nEOF",
                            folder, env).stdout)
    for name, cells in report.items():
        stopped = [i for i, c in enumerate(cells) if c["errors"]]
        assert stopped and cells[stopped[0]]["errors"] == ["NotImplementedError"], (name, cells)
        if name == "Network_Visualization.ipynb":  # the embedded model and its images, offline
            model = [c["text"] for c in cells[:stopped[0]] if "load_pretrained_model(" in c["source"]]
            assert model and "model: embedded" in model[0], (name, cells)
            continue
        data = [c["text"] for c in cells[:stopped[0]] if "load_coco_data(" in c["source"]]
        assert data and "Using the embedded mini dataset in %s" % (folder / "datasets" / "coco_mini") in data[0]

    for rel in STUDENT_FILES:  # the student finishes the assignment: the answer key's work
        shutil.copy(SOLUTIONS_DIR / PACKAGE / rel, folder / PACKAGE / rel)
    for name in notebooks():
        shutil.copy(SOLUTIONS_DIR / name, folder / name)
    (submit,) = readme_commands("Submit")
    summary = run(submit, folder, env).stdout.split("=== Summary")[1]
    assert "Public checks: %d of %d units pass" % (len(UNITS), len(UNITS)) in summary
    assert "Written answers: all answered" in summary
    assert (folder / "image_captioning_written.pdf").read_bytes()[:5] == b"%PDF-"
    assert "A ReLU output is not bounded above" in (folder / "image_captioning_written.html").read_text()
    upload = tmp_path / "upload"  # Gradescope keeps an uploaded zip as it is
    upload.mkdir()
    shutil.copy(folder / "image_captioning_code.zip", upload)
    with zipfile.ZipFile(upload / "image_captioning_code.zip") as archive:
        assert sorted(archive.namelist()) == sorted(["%s/%s" % (PACKAGE, r) for r in STUDENT_FILES] + notebooks())
    document, _, proc = run_autograder(image, fresh, upload)
    assert document["score"] == pytest.approx(TOTAL), (document.get("output"), proc.stderr[-2000:])
    assert document["output"].startswith("Graded automatically: %d parts of your captioning package, %d of %d points."
                                         % (len(UNITS), TOTAL, TOTAL))
    assert ("The 5 written questions (10 points, %d in all) are graded by hand in the written-answers assignment"
            % (TOTAL + 10)) in document["output"]

    server.files["/coco.zip"] = real_zip  # the real COCO download, from a stand-in server
    run(real, folder, dict(env, COCO_URL=server.url("/coco.zip")))
    loaded = run("python -c 'from captioning.coco_utils import load_coco_data; load_coco_data()'", folder, env)
    assert "Using the COCO captioning dataset in %s" % (folder / "datasets" / "coco_captioning") in loaded.stdout
