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
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from .grade import grade_timed, sandbox_layers
from .intake import SubmissionError
from .report import (clean_line, failure_document, gradescope, is_current, make_folders, write_grades_csv,
                     write_json_atomically, write_summary_html)
from .sandbox import SandboxError, add_limit_arguments, limits_from
from autograder.course import ASSIGNMENT



def student_name(path):
    return path.stem if path.suffix == ".zip" else path.name


def discover(submissions_dir):
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


class GraderError(Exception):
    """Grading one submission failed on the grader's side: nothing is recorded for it."""


def grade_student(path, units=None, limits=None, public_only=False):
    """The Gradescope results document of one submission.

    A submission that cannot be graded gets a score-0 document with the reason. A failure of the
    grader itself is never written down as the student's grade: SandboxError stops the batch,
    anything else raises GraderError for this student only (run again to grade them)."""
    started = time.monotonic()
    try:
        results, seconds = grade_timed(path, public_only=public_only, units=units, limits=limits, jobs=1)
    except SubmissionError as exc:
        return failure_document(str(exc), time.monotonic() - started)
    except SandboxError:
        raise
    except Exception as exc:
        raise GraderError("%s: %s" % (type(exc).__name__, str(exc)[:200])) from exc
    return gradescope(results, seconds)


def load_results(path):
    """A results document written before, or None (missing, unreadable, or from an older grader
    whose tests lack the "tags" units are read from: graded again)."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return document if is_current(document) else None


PROGRESS_FORMAT = ("{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                   "[{elapsed} elapsed, ETA {remaining}, {rate_fmt}{postfix}]")


def progress_bar(total, enabled=True):
    """The terminal progress bar of a batch, local or distributed: done/total, elapsed time and ETA."""
    from tqdm import tqdm
    return tqdm(total=total, desc="grading", unit="submission", disable=not enabled, file=sys.stderr,
                bar_format=PROGRESS_FORMAT, dynamic_ncols=True)


def local_grades(todo, workers=2, units=None, limits=None, public_only=False):
    """Yield (student, results document or None, grader error or None) as the local pool finishes them."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        futures = {pool.submit(grade_student, path, units, limits, public_only): student for student, path in todo}
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


def run_batch(submissions_dir, out, workers=2, force=False, units=None, limits=None, public_only=False,
              progress=True, scheduler=None, log=None):
    """Grade every submission not graded yet, on the local pool or (scheduler: a Dask scheduler's
    address) on a cluster (see cluster.py); {student: results document} of the whole class."""
    out = Path(out)
    make_folders(out)
    students = discover(submissions_dir)
    documents, todo, failed = {}, [], {}
    for student, path in students:
        existing = None if force else load_results(out / student / "results.json")
        if existing is not None:
            documents[student] = existing
        else:
            todo.append((student, path))
    client = None
    if scheduler:  # every worker's kit version and sandbox are checked before anything is sent
        from .cluster import connect, grades
        client = connect(scheduler, limits, log)
        stream = grades(client, todo, units, limits, public_only)
    else:
        stream = local_grades(todo, workers, units, limits, public_only)
    bar = progress_bar(len(todo), progress)
    try:
        for student, document, error in stream:
            if error is not None:
                failed[student] = error
                print("not graded (grader error, run again): %s: %s" % (clean_line(student), clean_line(error)),
                      file=sys.stderr)
            else:
                documents[student] = document
                write_json_atomically(out / student / "results.json", document)
                bar.set_postfix_str("%s %.1f" % (clean_line(student)[:40], document["score"]), refresh=False)
            bar.update()
    finally:
        stream.close()
        bar.close()
        if client is not None:
            client.close()
    write_grades_csv(out / "grades.csv", documents)
    write_summary_html(out / "summary.html", documents)
    if failed:
        raise GraderError("%d submission(s) not graded because of grader errors: %s; run again to grade them"
                          % (len(failed), ", ".join(clean_line(s) for s in sorted(failed))))
    return documents


def main(argv):
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
    units = [u.strip() for u in args.units.split(",")] if args.units else None
    limits = limits_from(args)
    from .cluster import ClusterError
    try:
        if not args.scheduler:  # on a cluster, every worker reports its own (cluster.connect)
            print("isolation: " + "; ".join(sandbox_layers(limits)), file=sys.stderr)
        documents = run_batch(args.submissions, args.out, args.workers, args.force, units, limits, args.public,
                              scheduler=args.scheduler, log=lambda line: print(line, file=sys.stderr))
    except SubmissionError as exc:
        print("cannot grade: %s" % exc, file=sys.stderr)
        return 2
    except (SandboxError, GraderError, ClusterError) as exc:
        print("cannot grade: %s" % clean_line(exc), file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted: the results.json already written are kept; run again to resume", file=sys.stderr)
        return 130
    totals = [d.get("score", 0.0) for d in documents.values()]
    print("%d submissions graded, mean %.2f; wrote %s" % (
        len(documents), sum(totals) / max(1, len(totals)),
        ", ".join(str(Path(args.out) / f) for f in ("grades.csv", "summary.html"))))
    if args.similarity:
        from .similarity import DEFAULT_THRESHOLD, write_similarity_report
        threshold = DEFAULT_THRESHOLD if args.similarity_threshold is None else args.similarity_threshold
        flagged = write_similarity_report(Path(args.out) / "similarity.html", discover(args.submissions), threshold)
        print("similarity: %d pair(s) at or above %.2f; wrote %s" % (
            len(flagged), threshold, Path(args.out) / "similarity.html"))
    return 0
