"""The test suite's areas: `make test-area AREA=NAME` runs one (pytest -m NAME)."""
from pathlib import Path

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
LONGEST_FIRST = ("test_bundle", "test_newest_versions", "test_corpus", "test_notebooks", "test_student_release",
                 "test_fair_grading", "test_nbgrader_autograde", "test_nbgrader_exchange", "test_datasets",
                 "test_release", "test_scale", "test_colab", "test_attacks", "test_new_unit")


def pytest_configure(config):
    for area in AREAS:
        config.addinivalue_line("markers", "%s: the %s area of the suite (make test-area AREA=%s)" % (area, area, area))


def pytest_collection_modifyitems(config, items):
    import pytest
    for item in items:
        module = Path(str(item.fspath)).stem
        if module not in AREA_OF:
            raise pytest.UsageError("tests/%s.py has no area: add it to AREAS in tests/conftest.py" % module)
        item.add_marker(AREA_OF[module])
    rank = {module: n for n, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).stem, len(rank)))  # stable: file order kept
