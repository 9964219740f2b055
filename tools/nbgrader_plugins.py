"""nbgrader plugins for the captioning kit, wired up in nbgrader_config.py.

- SyncUnitPoints: every autograded test cell gets the points of its unit in autograder/units.py.
- strip_release_modules / unmark_solution_modules: post-convert hooks doing for the package's .py
  files what nbgrader does for notebook cells (nbgrader copies .py files verbatim).
- RemoveSolutionMarkers: answer-key notebooks keep the solution code, without the marker lines.
- grading_environment: autograde pre-convert hook; the kernel it starts imports `autograder`.
- ClearHiddenFeedback: feedback without hidden tests, in the cells or in their tracebacks.
"""
import os
from pathlib import Path

from nbformat.v4 import new_code_cell
from nbgrader import utils
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions, NbGraderPreprocessor
from traitlets import List

from autograder.units import BY_GRADE_ID, UNITS

ROOT = str(Path(__file__).resolve().parent.parent)


def student_modules(assignment_dir, marker="BEGIN SOLUTION"):
    """Sorted posix paths, relative to assignment_dir, of the .py files holding solution regions."""
    base = Path(assignment_dir)
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*.py")
                  if marker in p.read_text(encoding="utf-8"))


def unmark(text, clear):
    """text without the lines holding clear's BEGIN/END SOLUTION delimiters."""
    return "\n".join(line for line in text.split("\n") if clear.begin_solution_delimeter not in line
                     and clear.end_solution_delimeter not in line)


def stub(text, clear):
    """text with every solution region replaced by the code stub, by ClearSolutions itself."""
    cell = new_code_cell(text)
    clear._replace_solution_region(cell, "python")
    return cell.source


def _rewrite_modules(config, directory, assignment, transform):
    """Apply transform(text, clear) to the student modules of one generated assignment dir."""
    coursedir = CourseDirectory(config=config)
    clear = ClearSolutions(config=config)
    base = coursedir.format_path(getattr(coursedir, directory), ".", assignment)
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
    """Set each autograded test cell's points from its unit; fail on unknown or missing units."""

    def preprocess(self, nb, resources):
        notebook = resources["nbgrader"]["notebook"] + ".ipynb"
        found = set()
        for cell in nb.cells:
            if not utils.is_grade(cell) or utils.is_solution(cell):
                continue
            grade_id = cell.metadata.nbgrader["grade_id"]
            unit = BY_GRADE_ID.get(grade_id)
            if unit is None or unit.notebook != notebook:
                raise ValueError(f"{notebook}: test cell {grade_id!r} is not a unit of this "
                                 "notebook in autograder/units.py")
            cell.metadata.nbgrader["points"] = unit.points
            found.add(grade_id)
        missing = [u.grade_id for u in UNITS if u.notebook == notebook and u.grade_id not in found]
        if missing:
            raise ValueError(f"{notebook}: no autograded test cell for unit(s) {', '.join(missing)}")
        return nb, resources


def grading_environment(**_):
    """Autograde pre-convert hook: the kernel (a child process) can `import autograder` and sees
    CAPTIONING_GRADING=1, so the checks report instead of raising."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != ROOT]
    os.environ["PYTHONPATH"] = os.pathsep.join([ROOT] + paths)
    os.environ["CAPTIONING_GRADING"] = "1"


class ClearHiddenFeedback(ClearHiddenTests):
    """ClearHiddenTests for feedback; error tracebacks of the cells that had hidden tests are cut
    to their last line, since a traceback quotes the code lines that raised."""

    display_data_priority = List(config=True)  # HTMLExporter configures it; unused here

    def preprocess_cell(self, cell, resources, cell_index):
        had_hidden = self.begin_test_delimeter in cell.source
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        for output in cell.get("outputs", []) if had_hidden else []:
            if output.output_type == "error":
                output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources
