"""Grade a whole class: python -m autograder batch SUBMISSIONS_DIR --out GRADES_DIR [--workers N] [--force]
[--scheduler ADDRESS] [--similarity [--similarity-threshold T]]

SUBMISSIONS_DIR holds one submission per student: a folder or a .zip named after the student, or
nbgrader's `submitted/STUDENT/image_captioning/` tree (SUBMISSIONS_DIR may be the course folder
holding submitted/, or submitted/ itself). Each student gets GRADES_DIR/STUDENT/results.json
(Gradescope format, written atomically as soon as that student is graded), then GRADES_DIR gets
grades.csv (student, total, one column per unit) and summary.html (score distribution and per-unit
pass rates, the plot embedded as a PNG). Every format is report.py's; units come from each test's
"tags". Outputs are private: files 0600, folders we create 0700 (see report.py).

Re-running resumes: a student whose results.json exists is not graded again unless --force, so
killing a run loses nothing already written. A submission that cannot be graded at all (empty zip,
no captioning/ package) still gets a results.json: score 0 and the reason.

--scheduler ADDRESS grades on a Dask cluster instead of the local pool (cluster.py), with the same
outputs. --similarity also writes GRADES_DIR/similarity.html, the class's most similar pairs of
student files (similarity.py): a report for staff, never a grade. A progress bar with the ETA goes
to stderr.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Iterator

from ..course import ASSIGNMENT
from ..grade import GraderError, grade_student, sandbox_layers
from ..intake import SubmissionError
from ..report import make_folders, write_grades_csv, write_json_atomically, write_summary_html
from ..results import GradingOptions, GradingResults
from ..sandbox import SandboxError, add_limit_arguments, limits_from
from ..text import clean_line

Grades = Iterator[tuple[str, "GradingResults | None", "str | None"]]  # (student, results, grader error)


def student_name(path: Path) -> str:
    return path.stem if path.suffix == ".zip" else path.name


def discover(submissions_dir: str | Path) -> list[tuple[str, Path]]:
    """[(student, path to grade)] sorted by student: folders and zips, or nbgrader's submitted/."""
    root = Path(submissions_dir)
    if not root.is_dir():
        raise SubmissionError("%s is not a folder" % root)
    if (root / "submitted").is_dir():
        root = root / "submitted"
    found = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or not (entry.is_dir() or entry.suffix == ".zip"):
            continue
        target = entry / ASSIGNMENT if (entry / ASSIGNMENT).is_dir() else entry
        found.setdefault(student_name(entry), target)
    return sorted(found.items())


def load_results(path: Path) -> GradingResults | None:
    """The results in a results.json written before, or None (missing, unreadable, or from an older
    grader whose tests lack the "tags" units are read from: graded again)."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return GradingResults.from_document(document)


PROGRESS_FORMAT = ("{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                   "[{elapsed} elapsed, ETA {remaining}, {rate_fmt}{postfix}]")


def progress_bar(total, enabled=True):
    """The terminal progress bar of a batch, local or distributed: done/total, elapsed time and ETA."""
    from tqdm import tqdm
    return tqdm(total=total, desc="grading", unit="submission", disable=not enabled, file=sys.stderr,
                bar_format=PROGRESS_FORMAT, dynamic_ncols=True)


def local_grades(todo: list[tuple[str, Path]], options: GradingOptions, workers: int = 2) -> Grades:
    """Yield (student, results or None, grader error or None) as the local pool finishes them."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        futures = {pool.submit(grade_student, path, options): student for student, path in todo}
        try:
            for future in as_completed(futures):
                try:
                    yield futures[future], future.result(), None
                except GraderError as exc:
                    yield futures[future], None, str(exc)
        except BaseException:
            for future in futures:
                future.cancel()  # Ctrl-C: start nothing new; grades already running finish (bounded)
            raise


def run_batch(submissions_dir: str | Path, out: str | Path, options: GradingOptions | None = None, workers: int = 2,
              force: bool = False, progress: bool = True, scheduler: str | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, GradingResults]:
    """Grade every submission not graded yet, on the local pool or (scheduler: a Dask scheduler's
    address) on a cluster (see cluster.py); {student: results} of the whole class. Each submission
    runs its checks in one child at a time (options.jobs 1): the pool's workers are the parallelism."""
    options = dataclasses.replace(options or GradingOptions(), jobs=1)
    out = Path(out)
    make_folders(out)
    students = discover(submissions_dir)
    grades, todo, failed = {}, [], {}
    for student, path in students:
        existing = None if force else load_results(out / student / "results.json")
        if existing is not None:
            grades[student] = existing
        else:
            todo.append((student, path))
    client = None
    if scheduler:  # every worker's kit version and sandbox are checked before anything is sent
        from .cluster import connect, grades_on
        client = connect(scheduler, options.limits, log)
        stream = grades_on(client, todo, options)
    else:
        stream = local_grades(todo, options, workers)
    bar = progress_bar(len(todo), progress)
    try:
        for student, results, error in stream:
            if error is not None or results is None:
                failed[student] = error
                print("not graded (grader error, run again): %s: %s" % (clean_line(student), clean_line(error)),
                      file=sys.stderr)
            else:
                grades[student] = results
                write_json_atomically(out / student / "results.json", results.to_gradescope())
                bar.set_postfix_str("%s %.1f" % (clean_line(student)[:40], results.total), refresh=False)
            bar.update()
    finally:
        stream.close()
        bar.close()
        if client is not None:
            client.close()
    write_grades_csv(out / "grades.csv", grades)
    write_summary_html(out / "summary.html", grades)
    if failed:
        raise GraderError("%d submission(s) not graded because of grader errors: %s; run again to grade them"
                          % (len(failed), ", ".join(clean_line(s) for s in sorted(failed))))
    return grades


def main(argv: list[str]) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m autograder batch", description=__doc__.split("\n")[0])
    parser.add_argument("submissions", help="folder of student folders/zips, or nbgrader's submitted/ tree")
    parser.add_argument("--out", required=True, help="where results.json per student, grades.csv, summary.html go")
    parser.add_argument("--workers", type=int, default=2, help="submissions graded at once (default 2)")
    parser.add_argument("--force", action="store_true", help="grade again students who already have results.json")
    parser.add_argument("--units", help="comma-separated unit names to grade (default: all)")
    parser.add_argument("--public", action="store_true", help="run only the public checks")
    add_limit_arguments(parser)
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="grade on the Dask cluster of this scheduler (e.g. tcp://host:8786), not locally")
    parser.add_argument("--similarity", action="store_true",
                        help="also write similarity.html: the most similar pairs of students' files (for staff)")
    parser.add_argument("--similarity-threshold", type=float, metavar="T",
                        help="similarity (0-1) from which a pair is flagged and shown side by side (default 0.5)")
    args = parser.parse_args(argv)
    units = tuple(u.strip() for u in args.units.split(",")) if args.units else None
    limits = limits_from(args)
    options = GradingOptions(units=units, limits=limits, public_only=args.public)
    refusals: tuple[type[Exception], ...] = (SandboxError, GraderError)
    if args.scheduler:  # cluster.py and Dask: staff machines only (the Gradescope bundle has neither)
        from .cluster import ClusterError
        refusals += (ClusterError,)
    try:
        if not args.scheduler:  # on a cluster, every worker reports its own (cluster.connect)
            print("isolation: " + "; ".join(sandbox_layers(limits)), file=sys.stderr)
        grades = run_batch(args.submissions, args.out, options, args.workers, args.force,
                           scheduler=args.scheduler, log=lambda line: print(line, file=sys.stderr))
    except SubmissionError as exc:
        print("cannot grade: %s" % exc, file=sys.stderr)
        return 2
    except refusals as exc:
        print("cannot grade: %s" % clean_line(exc), file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted: the results.json already written are kept; run again to resume", file=sys.stderr)
        return 130
    totals = [r.total for r in grades.values()]
    print("%d submissions graded, mean %.2f; wrote %s" % (
        len(grades), sum(totals) / max(1, len(totals)),
        ", ".join(str(Path(args.out) / f) for f in ("grades.csv", "summary.html"))))
    if args.similarity:
        from .similarity import DEFAULT_THRESHOLD, write_similarity_report
        threshold = DEFAULT_THRESHOLD if args.similarity_threshold is None else args.similarity_threshold
        flagged = write_similarity_report(Path(args.out) / "similarity.html", discover(args.submissions), threshold)
        print("similarity: %d pair(s) at or above %.2f; wrote %s" % (
            len(flagged), threshold, Path(args.out) / "similarity.html"))
    return 0
