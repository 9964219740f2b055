"""nbgrader plugins for the captioning kit, wired up in nbgrader_config.py.

- SyncUnitPoints: every autograded test cell gets the points of its unit in autograder/units.py.
- strip_release_modules / unmark_solution_modules: post-convert hooks doing for the package's .py
  files what nbgrader does for notebook cells (nbgrader copies .py files verbatim); both also write
  the package's units.py (unit_graph), what the notebooks' check() needs of autograder/units.py.
- RemoveSolutionMarkers: answer-key notebooks keep the solution code, without the marker lines.
- GradeWithKit: autograde preprocessor standing in for nbgrader's Execute. The submitted notebook
  is never executed: the kit's sandboxed grader grades the notebook's units on the submitted
  package (in submitted/, no link followed), and each autograded test cell gets outputs from
  which nbgrader's SaveAutoGrades records exactly the kit's points for its unit (a numeric
  execute_result is partial credit), plus the unit's test report as a stream output, for the feedback.
- HiddenCheckDetails: feedback preprocessor leaving the hidden tests' names and outputs out of the
  reports until staff release them (`c.HiddenCheckDetails.released = True` in nbgrader_config.py).
"""
import os
from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell, new_output
from nbgrader import utils
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions, NbGraderPreprocessor
from traitlets import Bool

from ..course import PACKAGE, student_modules
from ..results import GradingResults
from ..units import BY_GRADE_ID, UNITS


def unmark(text, clear):
    """text without the lines holding clear's BEGIN/END SOLUTION delimiters."""
    return "\n".join(line for line in text.split("\n") if clear.begin_solution_delimeter not in line
                     and clear.end_solution_delimeter not in line)


def stub(text, clear):
    """text with every solution region replaced by the code stub, by ClearSolutions itself."""
    cell = new_code_cell(text)
    clear._replace_solution_region(cell, "python")
    return cell.source


def edited_files():
    """The assignment-relative paths of the files students edit (those the grader reads)."""
    return tuple("%s/%s" % (PACKAGE, rel) for rel in student_modules())


def unit_notebooks():
    """The notebooks of the graded units, in the order students work through them."""
    return tuple(dict.fromkeys(u.notebook for u in UNITS))


def unit_graph():
    """The text of the shipped package's units.py: each unit's dependencies, the optional units, and
    what submit packs (the files students edit, the notebooks)."""
    lines = ['"""The graded units as check() and submit need them, written by the course\'s `make release`',
             "(do not edit).",
             "",
             "DEPENDS: the units whose functions each unit's checks call; OPTIONAL: the units you may skip;",
             "EDITED: the files you edit, which the autograder reads; NOTEBOOKS: the notebooks, in order.",
             '"""',
             "DEPENDS = {"]
    lines += ["    %r: %r," % (u.name, u.depends) for u in UNITS if u.depends]
    lines += ["}", "OPTIONAL = %r" % (tuple(u.name for u in UNITS if u.optional),),
              "EDITED = %r" % (edited_files(),), "NOTEBOOKS = %r" % (unit_notebooks(),), ""]
    return "\n".join(lines)


def _rewrite_modules(config, directory, assignment, transform):
    """Apply transform(text, clear) to the student modules of one generated assignment dir, and
    write its units.py."""
    coursedir = CourseDirectory(config=config)
    clear = ClearSolutions(config=config)
    base = coursedir.format_path(getattr(coursedir, directory), ".", assignment)
    Path(base, PACKAGE, "units.py").write_text(unit_graph(), encoding="utf-8")
    for rel in student_modules(base, clear.begin_solution_delimeter):
        path = Path(base, rel)
        try:
            text = transform(path.read_text(encoding="utf-8"), clear)
        except RuntimeError as err:
            raise RuntimeError(f"{os.path.relpath(path, coursedir.root)}: {err}") from err
        path.write_text(text, encoding="utf-8")


def strip_release_modules(assignment, student, notebooks, config):
    """GenerateAssignment post-convert hook: stub the solution regions of the released .py files."""
    _rewrite_modules(config, "release_directory", assignment, stub)


def unmark_solution_modules(assignment, student, notebooks, config):
    """GenerateSolution post-convert hook: drop the marker lines of the answer key's .py files."""
    _rewrite_modules(config, "solution_directory", assignment, unmark)


class RemoveSolutionMarkers(ClearSolutions):
    """Answer-key preprocessor: remove the BEGIN/END SOLUTION lines, keep the solution."""

    def preprocess_cell(self, cell, resources, cell_index):
        cell.source = unmark(cell.source, self)
        return cell, resources


class SyncUnitPoints(NbGraderPreprocessor):
    """Set each autograded test cell's points from its unit; fail on unknown units; append a test
    cell for a unit its notebook does not have one for yet."""

    def preprocess(self, nb, resources):
        notebook = resources["nbgrader"]["notebook"] + ".ipynb"
        found = set()
        hidden = ClearHiddenTests(config=self.config).begin_test_delimeter
        for cell in nb.cells:
            if not utils.is_grade(cell) or utils.is_solution(cell):
                continue
            grade_id = cell.metadata.nbgrader["grade_id"]
            unit = BY_GRADE_ID.get(grade_id)
            if unit is None or unit.notebook != notebook:
                raise ValueError(f"{notebook}: test cell {grade_id!r} is not a unit of this "
                                 "notebook in autograder/units.py")
            if hidden in cell.source:
                raise ValueError(f"{notebook}: test cell {grade_id!r} has hidden tests; autograde does "
                                 "not run notebooks, so they would never run: put hidden checks in "
                                 "autograder/hidden.py")
            cell.metadata.nbgrader["points"] = unit.points
            found.add(grade_id)
        for unit in [u for u in UNITS if u.notebook == notebook and u.grade_id not in found]:
            nb.cells.append(test_cell(unit))  # a new unit needs no notebook edit: its cell comes last
        return nb, resources


def test_cell(unit):
    """The autograded test cell of a unit: it runs the unit's public checks, its points are the unit's."""
    cell = new_code_cell(f'check("{unit.name}")')
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": unit.grade_id, "locked": True,
                                 "points": unit.points, "schema_version": 3, "solution": False, "task": False}
    return cell


def unit_outputs(results, points):
    """The outputs of one unit's test cell: its report, then its points as an execute_result (which
    nbgrader's determine_grade takes as partial credit, capped at the cell's points), holding in its
    metadata the report without the hidden tests' details, for HiddenCheckDetails."""
    from ..report import table

    got = min(round(results.total, 4), float(points))
    intro = "Graded on your captioning package by the course's grader (this notebook is not run for grading):\n"
    reports = [intro + (table(results, details) if results else "no result for this unit: 0 points") + "\n"
               for details in (True, False)]
    return [new_output("stream", name="stdout", text=reports[0]),
            new_output("execute_result", data={"text/plain": repr(got)}, execution_count=None,
                       metadata={WITHOUT_HIDDEN: reports[1]})]


WITHOUT_HIDDEN = "captioning_report_without_hidden_details"


class HiddenCheckDetails(NbGraderPreprocessor):
    """Feedback preprocessor: each test cell's report keeps the hidden tests' points but not their
    names and outputs, until staff set `released` (Gradescope shows them "after_published")."""

    released = Bool(False, help="Show the hidden tests' names and outputs in the feedback").tag(config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        outputs = cell.get("outputs", [])
        short = [o.metadata[WITHOUT_HIDDEN] for o in outputs if WITHOUT_HIDDEN in o.get("metadata", {})]
        if short and not self.released:
            cell.outputs = [new_output("stream", name="stdout", text=short[0]) if o.output_type == "stream" else o
                            for o in outputs]
        return cell, resources


def drop_linked_copies(submitted, autograded):
    """Delete from autograded/ every file nbgrader copied there through a symbolic link of the
    submitted tree (nbgrader follows them), so that no link's target reaches the feedback."""
    base = Path(submitted).resolve()
    for path in Path(autograded).rglob("*"):
        rel = path.relative_to(autograded)
        if path.suffix != ".ipynb" and path.is_file() and (base / rel).resolve() != base / rel:
            path.unlink()


class GradeWithKit(NbGraderPreprocessor):
    """Autograde preprocessor in place of nbgrader's Execute: the notebook is not executed.

    grade() (autograder/grade.py) grades the units of this notebook once, on the student's folder in
    submitted/ through intake's reads (regular files only, no link followed: a linked file is
    missing, "not followed"), never on nbgrader's autograded/ copy, which followed the links; the
    copies made through links are deleted from it. A notebook that is a link is graded as a missing
    one: 0 for its units, and only its test cells are kept. The student's code runs only in the
    sandbox. Each autograded test cell then gets the report and the points of its unit as outputs,
    for SaveAutoGrades and the feedback. A grade cell that is no unit of this notebook gets an error
    output, i.e. 0 points, never the full credit nbgrader gives a test cell without output.
    """

    def preprocess(self, nb, resources):
        from ..grade import grade
        from ..intake import SubmissionError
        from ..results import GradingOptions

        notebook = resources["nbgrader"]["notebook"] + ".ipynb"
        coursedir = CourseDirectory(config=self.config)
        folder = Path(coursedir.format_path(coursedir.submitted_directory, resources["nbgrader"]["student"],
                                            resources["nbgrader"]["assignment"]))
        drop_linked_copies(folder, resources["metadata"]["path"])
        units = [u.name for u in UNITS if u.notebook == notebook]
        by_unit = {name: [] for name in units}
        problem = None
        if (folder / notebook).is_symlink():
            problem = "%s is a symbolic link, and links are not followed: 0 points, as if it were missing" % notebook
            nb.cells = [new_markdown_cell(problem)] + [c for c in nb.cells if utils.is_grade(c) and utils.is_locked(c)]
        elif units:
            self.log.info("Grading %s of %s with the kit's grader: %s", notebook, folder, ", ".join(units))
            try:
                for result in grade(folder, GradingOptions(units=tuple(units))):
                    by_unit.setdefault(result.unit, []).append(result)
            except SubmissionError as exc:
                problem = "cannot grade the submission: %s" % exc
        for cell in nb.cells:
            if cell.cell_type != "code" or not utils.is_grade(cell) or utils.is_solution(cell):
                continue
            grade_id = cell.metadata.nbgrader["grade_id"]
            unit = BY_GRADE_ID.get(grade_id)
            cell.execution_count = None
            if unit is None or unit.name not in units:
                self.log.warning("%s: test cell %r is no unit of this notebook: 0 points", notebook, grade_id)
                cell.outputs = [new_output("error", ename="GradingError", traceback=[],
                                           evalue="not a graded unit of %s" % notebook)]
            elif problem:
                cell.outputs = [new_output("stream", name="stdout", text=problem + "\n"),
                                new_output("execute_result", data={"text/plain": "0.0"}, execution_count=None)]
            else:
                cell.outputs = unit_outputs(GradingResults(tuple(by_unit[unit.name])), cell.metadata.nbgrader["points"])
        return nb, resources
