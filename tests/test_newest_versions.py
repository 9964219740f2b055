"""The release on the versions students will have (issue #27). Besides the pins (followed from an
empty folder by tests/test_student_release.py): a venv for each Python 3.10-3.13 on this machine,
with the newest release the index serves of every package the release imports directly, unpinned.
PyTorch only for Python 3.11, pinned to the CPU build this machine's index serves (for 3.11 alone;
any other torch here is a CUDA build of several GB, never pulled): the network visualization
notebook and units are checked there, and elsewhere its units must fail for want of torch alone.
In each: the embedded data built (the network visualization's model as `make data` trained it with
the same torch: get_datasets.sh finds it up to date), every notebook run to its first TODO, the
answer key's work through submit. Each venv is built once per session (minutes each, on 2 cores)."""
import glob
import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

import pytest

from autograder.course import PACKAGE, RELEASE_DIR, ROOT, SOLUTIONS_DIR, notebooks
from autograder.intake import STUDENT_FILES
from autograder.units import NETVIZ_NB, UNITS
from tests.test_student_release import RUN_TO_FIRST_TODO, run, student_env
from tools.bundle import third_party_imports
from tools.release import COLAB_ONLY, STUDENT_TOOLS, python_of

PYTHONS = {re.search(r"/(3\.\d+)\.", p).group(1): p
           for p in sorted(glob.glob("/root/.pyenv/versions/3.1[0-3].*/bin/python3"))}  # where they are here
TORCH = "3.11", "torch==2.13.0"  # the Python for which this machine's index serves PyTorch's CPU build


def newest_requirements(minor):
    """The distributions of the release's direct imports and Jupyter, unpinned; torch as TORCH says."""
    files = [p for p in RELEASE_DIR.rglob("*") if p.suffix in (".py", ".ipynb")]
    imports = third_party_imports([python_of(p) for p in files], {PACKAGE, *COLAB_ONLY} | {p.stem for p in files})
    owners = metadata.packages_distributions()
    names = sorted({owners[name][0] for name in imports} | set(STUDENT_TOOLS))
    return [n for n in names if n != "torch"] + ([TORCH[1]] if minor == TORCH[0] else [])


@pytest.fixture(scope="session")
def newest_venvs(tmp_path_factory):
    """{minor: (venv, home)}: all built at once (pip mostly waits on the index), on first use;
    without compiling every module installed (the kernels compile what they import), which took
    half of pip's CPU time here."""
    built = {}

    def build(minor):
        root = tmp_path_factory.mktemp("newest-%s" % minor)
        (root / "home").mkdir()
        run("%s -m venv %s/venv && %s/venv/bin/python -m pip install -q --no-compile %s"
            % (PYTHONS[minor], root, root, " ".join("'%s'" % r for r in newest_requirements(minor))),
            root, student_env(root / "home"))
        return root / "venv", root / "home"

    def venv(minor):
        if not built:
            with ThreadPoolExecutor(len(PYTHONS)) as pool:
                built.update(zip(PYTHONS, pool.map(build, PYTHONS)))
        return built[minor]
    return venv


@pytest.mark.slow
@pytest.mark.parametrize("minor", sorted(PYTHONS))
def test_the_release_runs_on_the_newest_packages(minor, newest_venvs, tmp_path):
    venv, home = newest_venvs(minor)
    env = student_env(home, venv)
    with_torch = minor == TORCH[0]
    folder = tmp_path / "image_captioning"
    shutil.copytree(RELEASE_DIR, folder)
    if with_torch:
        shutil.copytree(ROOT / "datasets" / "netviz_mini", folder / "datasets" / "netviz_mini")
    build = "bash get_datasets.sh --mini" if with_torch else "python datasets/make_mini.py --dest datasets/coco_mini"
    data = run(build, folder, env)
    assert not with_torch or "netviz_mini is up to date" in data.stdout, data.stdout
    names = [n for n in notebooks() if with_torch or n != NETVIZ_NB]
    script = "python - " + " ".join(names) + " <<'EOF'\n" + RUN_TO_FIRST_TODO + "\nEOF"
    report = json.loads(run(script, folder, env).stdout)
    for name, cells in report.items():
        stopped = [c for c in cells if c["errors"]]
        assert stopped and stopped[0]["errors"] == ["NotImplementedError"], (minor, name, cells)
    for rel in STUDENT_FILES:
        shutil.copy(SOLUTIONS_DIR / PACKAGE / rel, folder / PACKAGE / rel)
    for name in notebooks():
        shutil.copy(SOLUTIONS_DIR / name, folder / name)
    summary = run("python -m captioning.submit", folder, env).stdout.split("=== Summary")[1]
    failing = {u.name for u in UNITS if u.notebook == NETVIZ_NB and not with_torch}
    assert "Public checks: %d of %d units pass" % (len(UNITS) - len(failing), len(UNITS)) in summary, (minor, summary)
    assert (folder / "image_captioning_written.pdf").read_bytes()[:5] == b"%PDF-"
    versions = run("python -m pip list --format=freeze", folder, env).stdout
    print(minor, " ".join(line for line in versions.split() if line.split("==")[0].lower() in
                          ("numpy", "matplotlib", "h5py", "pillow", "notebook", "ipykernel", "torch", "fpdf2")))
