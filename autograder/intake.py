"""Intake: turn what a student handed in (a folder or a zip) into a staged package to grade.

The staged copy holds the trusted given files from the reference package and only the files
students edit (course.student_modules) from the submission.
"""
import shutil
import zipfile
from pathlib import Path

from .course import PACKAGE, REFERENCE_PACKAGE, student_modules

STUDENT_FILES = student_modules()


class SubmissionError(Exception):
    """The submission cannot be graded at all (nothing to grade, unreadable archive)."""


def find_package(root):
    """The folder holding the submission's captioning/ package (possibly one level down)."""
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for folder in candidates:
        if (folder / PACKAGE).is_dir():
            return folder
    raise SubmissionError("no %s/ package found in the submission" % PACKAGE)


def unpack(submission, workdir):
    """A folder with the submission's files: the folder itself, or a zip extracted safely."""
    submission = Path(submission)
    if submission.is_dir():
        return submission
    if not submission.exists():
        raise SubmissionError("%s does not exist" % submission)
    try:
        with zipfile.ZipFile(submission) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if sum(m.file_size for m in members) > 200 << 20:
                raise SubmissionError("the zip unpacks to more than 200 MB")
            for member in members:
                target = (workdir / member.filename).resolve()
                if workdir.resolve() not in target.parents:
                    raise SubmissionError("the zip holds a path outside its folder: %s" % member.filename)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
    except zipfile.BadZipFile as exc:
        raise SubmissionError("%s is not a readable zip: %s" % (submission.name, exc))
    return workdir


def stage(folder, scratch):
    """scratch/captioning: the trusted given files plus the submission's student files.

    A student file that is missing or not UTF-8 becomes a module raising ImportError that says
    so, so that only the units that use it fail.
    """
    package = scratch / PACKAGE
    shutil.copytree(REFERENCE_PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__", *[Path(f).name for f in STUDENT_FILES]))
    for rel in STUDENT_FILES:
        src, problem = folder / PACKAGE / rel, None
        if not src.is_file():
            problem = "missing file %s/%s" % (PACKAGE, rel)
        else:
            try:
                src.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                problem = "%s/%s is not UTF-8 text" % (PACKAGE, rel)
        if problem:
            (package / rel).write_text("raise ImportError(%r)\n" % problem)
        else:
            shutil.copyfile(src, package / rel)


