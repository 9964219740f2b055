"""pytest front end: `pytest autograder [--submission DIR] [--public]`, one pytest test per check."""
import pytest

from autograder.course import SOLUTIONS_DIR


def pytest_addoption(parser):
    parser.addoption("--submission", default=str(SOLUTIONS_DIR),
                     help="folder or zip laid out like release/image_captioning/ (default: the answer key)")
    parser.addoption("--public", action="store_true", help="only the checks students can see")


@pytest.fixture(scope="session")
def graded(request):
    """{test name: TestResult} of the whole submission, graded once in the sandbox."""
    from autograder.grade import grade
    results = grade(request.config.getoption("--submission"), public_only=request.config.getoption("--public"))
    return {r.name: r for r in results}


def pytest_generate_tests(metafunc):
    """One test per check (only the public ones with --public)."""
    if "title" in metafunc.fixturenames:
        from autograder.grade import all_checks
        public_only = metafunc.config.getoption("--public")
        metafunc.parametrize("title", [t for t, c in all_checks().items() if c.public or not public_only])
