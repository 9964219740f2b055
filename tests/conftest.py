"""The test suite's areas (`make test-area AREA=NAME` runs one: pytest -m NAME), its order, and
what several test files share."""
import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

AREAS = {
    "rules": ("test_rules", "test_report", "test_layout"),
    "grading": ("test_autograder", "test_corpus", "test_netviz", "test_fair_grading", "test_new_unit",
                "test_beam_search", "test_channels", "test_frames", "test_retry_attacks"),
    "sandbox": ("test_isolation", "test_hostile", "test_attacks", "test_container_mode", "test_bundle",
                "test_fork_chain"),
    "front": ("test_batch", "test_scale", "test_pytest_front_end", "test_nbgrader_autograde",
              "test_nbgrader_exchange", "test_submit", "test_intake"),
    "release": ("test_release", "test_student_release", "test_notebooks", "test_notebook_checks", "test_colab",
                "test_newest_versions"),
    "data": ("test_datasets", "test_evaluate"),
}
AREA_OF = {module: area for area, modules in AREAS.items() for module in modules}
# The files that take longest (`pytest --durations`), handed out first: make test runs the suite on
# two workers, one file at a time each (pytest-xdist --dist loadfile), so that no long file is left
# for the end while the other worker idles.
LONGEST_FIRST = ("test_bundle", "test_corpus", "test_newest_versions", "test_student_release", "test_notebooks",
                 "test_nbgrader_autograde", "test_release", "test_nbgrader_exchange", "test_scale", "test_colab",
                 "test_datasets", "test_fair_grading", "test_attacks", "test_autograder", "test_new_unit")


def pytest_configure(config):
    for area in AREAS:
        config.addinivalue_line("markers", "%s: the %s area of the suite (make test-area AREA=%s)" % (area, area, area))


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = Path(str(item.fspath)).stem
        if module not in AREA_OF:
            raise pytest.UsageError("tests/%s.py has no area: add it to AREAS in tests/conftest.py" % module)
        item.add_marker(AREA_OF[module])
    rank = {module: n for n, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).stem, len(rank)))  # stable: file order kept


def run_folder(tmp_path_factory):
    """This test run's temporary folder, the same for every pytest-xdist worker."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


def repo_copy(dest):
    """Copy what the release needs, plus the committed release/ and solutions/, into dest."""
    from tools.release import STAGED, copy_student_inputs
    for name in STAGED + ("release", "solutions"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, dest / name)
    copy_student_inputs(dest)
    return dest


# Another BLAS kernel and thread count than `make release` has: what the release writes must not
# depend on the machine's floating-point noise (hints.json holds the mistakes' numbers).
OTHER_BLAS = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "2"}
STALE = {"release": "stale.txt", "solutions": "captioning/stale.py"}  # planted before the release


@pytest.fixture(scope="session")
def released_course(tmp_path_factory):
    """A copy of the course (what `make release` reads, the committed release/ and solutions/ with
    a STALE file planted in each, the datasets linked) after `make release` in it under OTHER_BLAS
    (what it printed in release.out): its own release/, solutions/ and gradebook. Made once per test
    run, by whichever worker asks first while the others wait; copy it (shutil.copytree(...,
    symlinks=True)) before changing anything."""
    from tools.release import ASSIGNMENT
    base = run_folder(tmp_path_factory)
    course = base / "released-course"
    with open(base / "released-course.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (base / "released-course.done").exists():
            shutil.rmtree(course, ignore_errors=True)
            course.mkdir()
            os.symlink(ROOT / "datasets", course / "datasets")
            repo_copy(course)
            for out, rel in STALE.items():
                (course / out / ASSIGNMENT / rel).write_text("left over\n")
            with open(course / "release.out", "w") as out:
                subprocess.run([sys.executable, "-m", "tools.release"], cwd=course, check=True, stdout=out,
                               stderr=subprocess.STDOUT, env=dict(os.environ, **OTHER_BLAS))
            (base / "released-course.done").touch()
    return course
