"""nbgrader configuration of the captioning kit: read by every nbgrader command run from here.

The code it wires in lives in tools/nbgrader_plugins.py; `make release` (tools/release.py) runs
generate_assignment and generate_solution with it.
"""
import os
import sys
from functools import partial

ROOT = os.path.dirname(os.path.abspath(__file__))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.converters import GenerateAssignment  # noqa: E402
from nbgrader.preprocessors import (  # noqa: E402
    ClearHiddenTests, ClearMarkScheme, ClearOutput, GetGrades, IncludeHeaderFooter, LockCells)

from tools import nbgrader_plugins as plugins  # noqa: E402

ASSIGNMENT = "image_captioning"
c = get_config()  # noqa: F821 (provided by traitlets)

c.CourseDirectory.root = ROOT
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

# Autograding: keep the student's modules, let the kernel import `autograder` with
# CAPTIONING_GRADING=1, and allow for the training cells (an overfit test cell trains twice: the
# visible check, then unit_score; on a loaded 2-core machine it took over 300 s).
c.Autograde.exclude_overwriting = {
    ASSIGNMENT: plugins.student_modules(os.path.join(ROOT, "source", ASSIGNMENT))}
c.Autograde.pre_convert_hook = plugins.grading_environment
c.Execute.timeout = 600

# Feedback: grades without the hidden tests (nor their tracebacks); the solution never gets
# there, as autograde keeps the student's modules.
c.GenerateFeedback.preprocessors = [GetGrades, plugins.ClearHiddenFeedback, CSSHTMLHeaderPreprocessor]
