"""Grade a whole class: python -m autograder batch SUBMISSIONS_DIR --out GRADES_DIR [--workers N] [--force]

SUBMISSIONS_DIR holds one submission per student: a folder or a .zip named after the student, or
nbgrader's `submitted/STUDENT/image_captioning/` tree (SUBMISSIONS_DIR may be the course folder
holding submitted/, or submitted/ itself). Each student gets GRADES_DIR/STUDENT/results.json
(Gradescope format, written atomically as soon as that student is graded), then GRADES_DIR gets
grades.csv (student, total, one column per unit) and summary.html (score distribution and per-unit
pass rates, the plot embedded as a PNG).

Re-running resumes: a student whose results.json exists is not graded again unless --force, so
killing a run loses nothing already written. A submission that cannot be graded at all (empty zip,
no captioning/ package) still gets a results.json: score 0 and the reason.
"""
import base64
import csv
import html
import io
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from .grade import SubmissionError, grade_timed
from .report import gradescope, write_json_atomically
from .sandbox import Limits
from .units import UNITS

ASSIGNMENT = "image_captioning"


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


def failure_document(reason, seconds=0.0):
    """results.json of a submission that could not be graded: score 0 and why, in one line."""
    return {"score": 0.0, "execution_time": round(seconds, 2), "output": "Not graded: " + reason,
            "tests": []}


def grade_student(path, units=None, limits=None, public_only=False):
    """The Gradescope results document of one submission; never raises for a bad submission."""
    started = time.monotonic()
    try:
        results, seconds = grade_timed(path, public_only=public_only, units=units, limits=limits, jobs=1)
    except SubmissionError as exc:
        return failure_document(str(exc), time.monotonic() - started)
    except Exception as exc:  # a grader bug must not stop the class: record it and go on
        return failure_document("internal grader error (%s: %s), please tell the course staff"
                                % (type(exc).__name__, str(exc)[:200]), time.monotonic() - started)
    return gradescope(results, seconds)


def unit_of(test_name):
    """The unit a test belongs to, from its name 'unit: what it checks'."""
    for unit in sorted(UNITS, key=lambda u: -len(u.name)):
        if test_name.startswith(unit.name + ":"):
            return unit.name
    return None


def unit_scores(document):
    """{unit: (score, max)} of one results document."""
    scores = {}
    for test in document.get("tests", []):
        unit = unit_of(test["name"])
        if unit:
            got, top = scores.get(unit, (0.0, 0.0))
            scores[unit] = (got + test["score"], top + test["max_score"])
    return scores


def load_results(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_csv(out, documents):
    rows = [["student", "total"] + [u.name for u in UNITS]]
    for student, document in sorted(documents.items()):
        scores = unit_scores(document)
        rows.append([student, "%.2f" % document.get("score", 0.0)] +
                    ["%.2f" % scores.get(u.name, (0.0, 0.0))[0] for u in UNITS])
    tmp = out / ".grades.csv.tmp"
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    os.replace(tmp, out / "grades.csv")


def plot_png(totals, pass_rates):
    """The score histogram and per-unit pass-rate bars, as PNG bytes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1, 1.6]})
    left.hist(totals, bins=range(0, 105, 5), color="#4c72b0", edgecolor="white")
    left.set_xlabel("total score")
    left.set_ylabel("students")
    left.set_title("Score distribution (n=%d)" % len(totals))
    names = list(pass_rates)
    right.barh(range(len(names)), [100 * pass_rates[n] for n in names], color="#55a868")
    right.set_yticks(range(len(names)))
    right.set_yticklabels(names, fontsize=8)
    right.invert_yaxis()
    right.set_xlim(0, 100)
    right.set_xlabel("% of students with full points")
    right.set_title("Per-unit pass rate")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def write_summary(out, documents):
    totals = [d.get("score", 0.0) for d in documents.values()]
    graded_units = [u for u in UNITS if any(u.name in unit_scores(d) for d in documents.values())]
    pass_rates = {}
    for u in graded_units:
        full = [s for s in (unit_scores(d).get(u.name) for d in documents.values()) if s]
        pass_rates[u.name] = sum(1 for got, top in full if got >= top - 1e-9) / max(1, len(documents))
    png = base64.b64encode(plot_png(totals, pass_rates)).decode()
    not_graded = sorted((s, d["output"]) for s, d in documents.items() if not d.get("tests"))
    mean = sum(totals) / len(totals) if totals else 0.0
    parts = ["<!doctype html><meta charset='utf-8'><title>Grades summary</title>",
             "<h1>Image captioning: %d submissions</h1>" % len(documents),
             "<p>mean %.2f, median %.2f, min %.2f, max %.2f</p>" % (
                 mean, sorted(totals)[len(totals) // 2] if totals else 0, min(totals, default=0), max(totals, default=0)),
             "<img alt='score distribution and per-unit pass rates' src='data:image/png;base64,%s'>" % png,
             "<h2>Per-unit pass rate</h2><table border=1 cellpadding=3><tr><th>unit</th><th>full points</th></tr>"]
    parts += ["<tr><td>%s</td><td>%.0f%%</td></tr>" % (html.escape(n), 100 * r) for n, r in pass_rates.items()]
    parts.append("</table>")
    if not_graded:
        parts.append("<h2>Not graded</h2><ul>")
        parts += ["<li>%s: %s</li>" % (html.escape(s), html.escape(o)) for s, o in not_graded]
        parts.append("</ul>")
    tmp = out / ".summary.html.tmp"
    tmp.write_text("\n".join(parts))
    os.replace(tmp, out / "summary.html")


def run_batch(submissions_dir, out, workers=2, force=False, units=None, limits=None, public_only=False,
              progress=True):
    """Grade every submission not graded yet; {student: results document} of the whole class."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    students = discover(submissions_dir)
    documents, todo = {}, []
    for student, path in students:
        existing = None if force else load_results(out / student / "results.json")
        if existing is not None:
            documents[student] = existing
        else:
            todo.append((student, path))
    from tqdm import tqdm
    bar = tqdm(total=len(todo), desc="grading", unit="submission", disable=not progress, file=sys.stderr)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        futures = {pool.submit(grade_student, path, units, limits, public_only): student for student, path in todo}
        try:
            for future in as_completed(futures):
                student = futures[future]
                documents[student] = future.result()
                write_json_atomically(out / student / "results.json", documents[student])
                bar.set_postfix_str("%s %.1f" % (student, documents[student]["score"]))
                bar.update()
        except BaseException:
            for future in futures:
                future.cancel()  # Ctrl-C: start nothing new; grades already running finish (bounded)
            raise
    bar.close()
    write_csv(out, documents)
    write_summary(out, documents)
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
    parser.add_argument("--check-seconds", type=float, help="time limit per check (default %g)" % Limits.check_seconds)
    parser.add_argument("--submission-seconds", type=float,
                        help="time limit for a whole submission (default %g)" % Limits.submission_seconds)
    args = parser.parse_args(argv)
    units = [u.strip() for u in args.units.split(",")] if args.units else None
    limits = Limits()
    if args.check_seconds:
        limits.check_seconds = args.check_seconds
    if args.submission_seconds:
        limits.submission_seconds = args.submission_seconds
    try:
        documents = run_batch(args.submissions, args.out, args.workers, args.force, units, limits, args.public)
    except SubmissionError as exc:
        print("cannot grade: %s" % exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the results.json already written are kept; run again to resume", file=sys.stderr)
        return 130
    totals = [d.get("score", 0.0) for d in documents.values()]
    print("%d submissions graded, mean %.2f; wrote %s" % (
        len(documents), sum(totals) / max(1, len(totals)), ", ".join(str(Path(args.out) / f) for f in ("grades.csv", "summary.html"))))
    return 0
