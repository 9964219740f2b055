"""pytest front end: `pytest autograder/front --submission=DIR [--public]`, one pytest test per check.

The submission is one word, `--submission=DIR`, and only grade() reads it (intake's staged copy).
pytest reads `--submission DIR` before this file declares the option, takes DIR for a test path
and imports DIR's conftest.py as the grading user, outside the sandbox: that form is refused here,
before pytest gets to DIR (pass autograder/front first, as shown). A submission inside a folder pytest
collects is refused too.
"""
from pathlib import Path

import pytest

from autograder.course import SOLUTIONS_DIR


def pytest_addoption(parser, pluginmanager):
    if "--submission" in pluginmanager.get_plugin("pytestconfig").invocation_params.args:
        raise pytest.UsageError("write --submission=DIR as one word: with `--submission DIR` pytest takes DIR for "
                                "a test path and runs its conftest.py outside the sandbox")
    parser.addoption("--submission", default=str(SOLUTIONS_DIR),
                     help="folder or zip laid out like release/image_captioning/ (default: the answer key)")
    parser.addoption("--public", action="store_true", help="only the checks students can see")


def pytest_configure(config):
    submission = Path(config.getoption("--submission")).resolve()
    for collected in config.args:
        path = Path(collected.split("::")[0]).resolve()
        if path == submission or path in submission.parents:
            raise pytest.UsageError("the submission %s is inside %s, which pytest collects: move it elsewhere"
                                    % (submission, path))


@pytest.fixture(scope="session")
def graded(request):
    """{test name: CheckResult} of the whole submission, graded once in the sandbox."""
    from autograder.grade import grade
    from autograder.results import GradingOptions
    options = GradingOptions(public_only=request.config.getoption("--public"))
    return {r.name: r for r in grade(request.config.getoption("--submission"), options)}


def pytest_generate_tests(metafunc):
    """One test per check (only the public ones with --public)."""
    if "title" in metafunc.fixturenames:
        from autograder.reference import all_checks
        public_only = metafunc.config.getoption("--public")
        metafunc.parametrize("title", [t for t, c in all_checks().items() if c.public or not public_only])
