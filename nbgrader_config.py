"""nbgrader configuration of the captioning kit: read by every nbgrader command run from here.

The code it wires in lives in autograder/front/nbgrader.py; `make release` (tools/release.py) runs
generate_assignment and generate_solution with it.

`nbgrader autograde` does not execute the submitted notebooks. nbgrader's Execute preprocessor
would run every student cell in a kernel of the grading process's user (root on a grading
server), unsandboxed, before the test cells: such code can rewrite the package, patch the checks
or print any score. In its place, plugins.GradeWithKit grades each notebook's units once with the
kit's grader (autograder.grade.grade), which runs the student's package only in its sandbox, and
writes into each autograded test cell its unit's report and points, which nbgrader's own
SaveAutoGrades records: nbgrader gives exactly the points of `python -m autograder`. The notebook
is only a vehicle for the points and the feedback; what is graded is the `captioning` package.
"""
import os
from functools import partial

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.converters import Autograde, GenerateAssignment
from nbgrader.preprocessors import (
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    Execute,
    GetGrades,
    IncludeHeaderFooter,
    LockCells,
)

from autograder.course import ASSIGNMENT, ROOT, SOURCE_DIR, student_modules
from autograder.front import nbgrader as plugins

c = get_config()  # noqa: F821 (provided by traitlets)

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.solution_directory = "solutions"

# Student version: unit points from autograder/units.py; the package's solution regions stubbed.
c.GenerateAssignment.preprocessors = (
    [plugins.SyncUnitPoints] + GenerateAssignment.class_traits()["preprocessors"].default())
c.GenerateAssignment.post_convert_hook = partial(plugins.strip_release_modules, config=c)

# Answer key: solutions kept without their markers, no hidden tests, not executed (no outputs).
c.GenerateSolution.preprocessors = [
    plugins.SyncUnitPoints, IncludeHeaderFooter, LockCells, ClearOutput, ClearMarkScheme,
    ClearHiddenTests, plugins.RemoveSolutionMarkers]
c.GenerateSolution.post_convert_hook = partial(plugins.unmark_solution_modules, config=c)

# Autograding: nbgrader's default autograde steps, in their order, with Execute replaced by the
# kit's sandboxed grader (see the docstring). The student's package files are kept: nbgrader would
# otherwise overwrite them with source/'s (the solution). A deleted test cell is put back, so that
# it too gets its unit's points.
_AUTOGRADE_STEPS = Autograde.class_traits()["autograde_preprocessors"].default()
assert Execute in _AUTOGRADE_STEPS, "nbgrader's autograde steps changed: review nbgrader_config.py"
c.Autograde.autograde_preprocessors = [
    plugins.GradeWithKit if step is Execute else step for step in _AUTOGRADE_STEPS]
c.Autograde.exclude_overwriting = {
    ASSIGNMENT: student_modules(SOURCE_DIR)}
c.OverwriteCells.add_missing_cells = True

# Feedback: grades and each test cell's report; nbgrader's ClearHiddenTests as a safety net (the
# test cells hold no hidden tests: SyncUnitPoints refuses them). The solution never gets there, as
# autograde keeps the student's modules. The hidden tests' names and outputs stay out of it (their
# points count) until staff release them, as Gradescope's "after_published": set this to True, then
# generate_feedback --force and release_feedback again.
c.HiddenCheckDetails.released = False
c.GenerateFeedback.preprocessors = [
    GetGrades, plugins.HiddenCheckDetails, ClearHiddenTests, CSSHTMLHeaderPreprocessor]

# nbgrader's exchange (release_assignment, fetch_assignment, submit, collect, release_feedback,
# fetch_feedback, list): a folder every student can write to (mode 1777), $NBGRADER_EXCHANGE or
# exchange/ in the kit; students' nbgrader names the same folder and course (README.md).
c.CourseDirectory.course_id = "captioning"
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", os.path.join(ROOT, "exchange"))
