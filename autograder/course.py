"""The course's layout: where things are and what they are called. Every other file imports it.

Nothing here executes course code: importing it only names paths.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "image_captioning"
PACKAGE = "captioning"                      # the Python package students complete
SOURCE_DIR = ROOT / "source" / ASSIGNMENT   # instructor version (the one place humans edit)
RELEASE_DIR = ROOT / "release" / ASSIGNMENT
SOLUTIONS_DIR = ROOT / "solutions" / ASSIGNMENT
REFERENCE_PACKAGE = SOURCE_DIR / PACKAGE    # the trusted reference implementation and checks
SOLUTION_MARKER = "BEGIN SOLUTION"


def student_modules(package_dir=REFERENCE_PACKAGE, marker=SOLUTION_MARKER):
    """Sorted posix paths, relative to package_dir, of the .py files students edit: those
    holding a solution region."""
    base = Path(package_dir)
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*.py")
                  if "__pycache__" not in p.parts and marker in p.read_text(encoding="utf-8"))


def notebooks():
    """Names of the assignment's notebooks, in source order."""
    return sorted(p.name for p in SOURCE_DIR.glob("*.ipynb"))
