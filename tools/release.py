"""`make release`: regenerate release/ and solutions/ from source/ with nbgrader.

nbgrader runs on a staging copy of the course (source/, nbgrader_config.py, tools/, autograder/);
its output replaces release/<assignment> and solutions/<assignment> only once it has been checked,
so a failed release leaves them untouched. gradebook.db at the repo root is (re)created on the way.
Any problem prints one line and exits 1; the full nbgrader log is kept in build/release.log.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from nbgrader.coursedir import CourseDirectory
from nbgrader.utils import find_all_files

from autograder.units import UNITS
from autograder.course import ASSIGNMENT

ROOT = Path(__file__).resolve().parent.parent
STAGED = ("nbgrader_config.py", "tools", "autograder", "source")
OUTPUTS = ("release", "solutions")
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
SHOWN_LOG = "build/release.log"
LOG = ROOT / SHOWN_LOG


class ReleaseError(Exception):
    """A problem that stops the release; its message is the line shown to the user."""


def check_source(source):
    """Fail on what nbgrader would silently get wrong: nested or missing notebooks."""
    if not source.is_dir():
        raise ReleaseError(f"missing {source.relative_to(ROOT)}")
    notebooks = [p for p in source.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    nested = [p for p in notebooks if p.parent != source]
    if nested:
        raise ReleaseError(f"nbgrader only converts top-level notebooks: {nested[0].relative_to(ROOT)}")
    missing = sorted({u.notebook for u in UNITS} - {p.name for p in notebooks})
    if missing:
        raise ReleaseError(f"notebook(s) of graded units missing from source: {', '.join(missing)}")


def last_error(output):
    """The last exception line of a log, else its last non-empty line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"[\w.]*(Error|Exception)\b", line)]
    return (errors or lines or ["no output"])[-1]


def nbgrader(course, command, log):
    """Run `nbgrader <command> ASSIGNMENT --force` in course against the repo's gradebook."""
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", command, ASSIGNMENT, "--force", "--log-level=INFO",
         f"--CourseDirectory.db_url=sqlite:///{ROOT / 'gradebook.db'}"],
        cwd=course, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write(f"$ nbgrader {command}\n{proc.stdout}\n")
    if proc.returncode:
        raise ReleaseError(f"nbgrader {command} failed: {last_error(proc.stdout)} (see {SHOWN_LOG})")
    if "convert hook failed" in proc.stdout:  # nbgrader only logs hook exceptions
        raise ReleaseError(f"nbgrader {command}: convert hook failed: {last_error(proc.stdout)} "
                           f"(see {SHOWN_LOG})")


def check_output(source, generated):
    """Every source file made it, no marker is left, every module and notebook is well formed."""
    for path in find_all_files(str(source), CourseDirectory().ignore):
        rel = Path(path).relative_to(source)
        if not (generated / rel).is_file():
            raise ReleaseError(f"{rel} missing from {generated.parent.name}/")
    for path in sorted(p for p in generated.rglob("*") if p.is_file()):
        shown = path.relative_to(generated.parent.parent)
        text = path.read_text(encoding="utf-8", errors="replace")
        for marker in MARKERS:
            if marker in text:
                raise ReleaseError(f"{marker!r} left in {shown}")
        try:
            if path.suffix == ".py":
                compile(text, str(shown), "exec")
            elif path.suffix == ".ipynb":
                nbformat.validate(nbformat.reads(text, as_version=4))
        except (SyntaxError, nbformat.ValidationError) as err:
            raise ReleaseError(f"broken {shown}: {err}".splitlines()[0]) from err


def release():
    """Generate, check and install release/ASSIGNMENT and solutions/ASSIGNMENT; return a summary."""
    source = ROOT / "source" / ASSIGNMENT
    check_source(source)
    LOG.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, LOG.open("w") as log:
        course = Path(tmp)
        for name in STAGED:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, course / name,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy(ROOT / name, course / name)
        nbgrader(course, "generate_assignment", log)
        nbgrader(course, "generate_solution", log)
        for out in OUTPUTS:
            check_output(source, course / out / ASSIGNMENT)
        counts = []
        for out in OUTPUTS:
            dest = ROOT / out / ASSIGNMENT
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(course / out / ASSIGNMENT, dest)
            counts.append(f"{sum(p.is_file() for p in dest.rglob('*'))} files in {out}/{ASSIGNMENT}")
    return "release: " + ", ".join(counts) + "; gradebook.db updated"


def main():
    try:
        print(release())
    except ReleaseError as err:
        sys.exit(f"release failed: {err}")


if __name__ == "__main__":
    main()
