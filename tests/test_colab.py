"""The notebooks on Google Colab (issue #27), with a stand-in `google.colab` whose drive.mount links
the mount point's MyDrive to a folder, the release copied there alone and the kernel started outside
it (Colab's /content): each notebook's first cell mounts, enters the folder, installs nothing Colab
has and builds the embedded data once. The release runs to its first TODO; the answer key, copied in
as a student finishing the work would, runs Network_Visualization.ipynb to the end (the fastest;
the first cell is the only Colab-specific code, and tests/test_notebooks.py runs every answer-key
notebook to the end locally). The network visualization's model is there already, as `make data`
trained it (tests/test_student_release.py trains it the student's way): the set-up finds it up to
date and builds the rest."""
import shutil

import nbformat
import pytest

from autograder.course import PACKAGE, RELEASE_DIR, ROOT, SOLUTIONS_DIR, notebooks
from autograder.intake import STUDENT_FILES
from autograder.units import NETVIZ_NB

MOUNT = "/content/drive"  # as the notebooks have it
FAKE_DRIVE = '''import os


def mount(mountpoint, force_remount=False):
    """Colab's drive.mount, stood in for: mountpoint/MyDrive links to $FAKE_DRIVE."""
    os.makedirs(mountpoint, exist_ok=True)
    if not os.path.islink(os.path.join(mountpoint, "MyDrive")):
        os.symlink(os.environ["FAKE_DRIVE"], os.path.join(mountpoint, "MyDrive"))
    print("Mounted at " + mountpoint)
'''


def first_code_cell(path):
    return next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code").source


def run_all(path, content):
    """Run All of the notebook at path, as on Colab: the kernel in content/, Drive mounted under it.
    [(source, text output, error names)] of its code cells, up to the first error."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.source = cell.source.replace(MOUNT, str(content / "drive"))
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(content)}}).execute()
    except CellExecutionError:
        pass
    return [(c.source, "".join(o.get("text", "") for o in c.outputs),
             [o.ename for o in c.outputs if o.output_type == "error"]) for c in nb.cells if c.cell_type == "code"]


def test_every_notebook_opens_with_the_same_set_up_cell():
    cells = {first_code_cell(RELEASE_DIR / name) for name in notebooks()}
    assert len(cells) == 1 and "from google.colab import drive" in cells.pop()


@pytest.mark.slow
def test_on_colab_the_release_runs_to_its_first_todo_and_the_key_to_the_end(tmp_path, monkeypatch):
    fake, drive, content = tmp_path / "fake", tmp_path / "drive", tmp_path / "content"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "drive.py").write_text(FAKE_DRIVE)
    content.mkdir()
    folder = drive / "image_captioning"  # FOLDERNAME's default
    shutil.copytree(RELEASE_DIR, folder)  # what the student uploads: the release alone
    shutil.copytree(ROOT / "datasets" / "netviz_mini", folder / "datasets" / "netviz_mini")
    monkeypatch.setenv("PYTHONPATH", str(fake))
    monkeypatch.setenv("FAKE_DRIVE", str(drive))
    monkeypatch.delenv("CAPTIONING_DATASETS", raising=False)
    built = []
    for name in notebooks():
        cells = run_all(folder / name, content)
        stopped = [i for i, (_, _, errors) in enumerate(cells) if errors]
        assert stopped and cells[stopped[0]][2] == ["NotImplementedError"] and stopped[0] > 1, (name, cells)
        assert "Mounted at " in cells[0][1] and "pip" not in cells[0][1], (name, cells[0])
        built.append("Building the embedded dataset" in cells[0][1])
        assert not built[-1] or "netviz_mini is up to date" in cells[0][1], cells[0]
        if name != NETVIZ_NB:
            loaded = [text for source, text, _ in cells if "load_coco_data(" in source]
            assert "Using the embedded mini dataset in %s" % (folder / "datasets" / "coco_mini") in loaded[0], cells
    assert built == [True] + [False] * (len(built) - 1)  # once, by the first notebook run
    for rel in STUDENT_FILES:  # the student finishes the work
        shutil.copy(SOLUTIONS_DIR / PACKAGE / rel, folder / PACKAGE / rel)
    shutil.copy(SOLUTIONS_DIR / NETVIZ_NB, folder / NETVIZ_NB)
    cells = run_all(folder / NETVIZ_NB, content)
    assert not [c for c in cells if c[2]], cells
    assert "model: embedded" in "".join(text for _, text, _ in cells)
