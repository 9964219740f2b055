"""Every output of the grader but results.json (results.py), made from GradingResults.

- table(): the terminal per-test table (also printed by the nbgrader front end);
- write_grades_csv(), write_summary_html() (with plot_png()): a class's grades;
- write_atomically() / write_json_atomically(): the one writer of every output file.

Student-controlled text (test outputs, which quote the submission's messages and prints, reasons
for not grading, student names) is cleaned before it reaches any output (text.py), so a
submission cannot forge a line of the table. In grades.csv, text cells starting with = + - @ TAB
or CR get a leading single quote (spreadsheet formulas).

File modes: grading outputs written for staff (per-student results.json, grades.csv,
summary.html) hold a class's grades: they are created 0600, and the folders we create for them
0700 (existing folders keep their modes). The CLI's --results file is different: its path is
chosen by whoever runs the grader (Gradescope's harness, a student self-checking, a script), and
it holds one submission's results only, so it gets the ordinary mode of a new file (0666 minus
the umask), as `open()` would give; its folder's permissions decide who can reach it.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from .results import EPSILON, GradingResults, Status, missing_files_lines
from .text import clean_line, clean_text
from .units import TOTAL, UNITS

PRIVATE_FILE, PRIVATE_FOLDER = 0o600, 0o700
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

def csv_cell(value):
    """A grades.csv cell: numbers as they are, text cleaned and kept from being a formula."""
    if isinstance(value, (int, float)):
        return value
    text = clean_line(value)  # tabs and CRs become spaces: " =1" is checked like "=1"
    return "'" + text if text.lstrip(" ").startswith(CSV_FORMULA_STARTS) else text


# ---------------------------------------------------------------------------- per-submission

def table(results: GradingResults, hidden_details: bool = True) -> str:
    """A line per missing file, a per-test table, then per-unit and total scores, as text. Without
    hidden_details, the hidden tests of each unit are one line of points, without their names and outputs.

    Every line of a test's output is indented, and the output is cleaned first, so nothing a
    submission prints can start a line of its own (a forged TOTAL, say).
    """
    indent = " " * 15
    lines = missing_files_lines(results)
    for r in results:
        if r.public or hidden_details:
            hidden = "" if r.public else "  [hidden]"
            lines.append("%6.2f / %-5.2f %s%s" % (r.score, r.max_score, clean_line(r.name), hidden))
            lines.extend(indent + line for line in (clean_text(r.output).split("\n")))
    if not hidden_details:
        hidden_only = GradingResults(tuple(r for r in results if not r.public))
        for unit, (got, top) in hidden_only.by_unit().items():
            lines.append("%6.2f / %-5.2f %s: hidden tests (shown when the course releases them)" % (got, top, unit))
    lines.append("")
    for unit, (got, top) in results.by_unit().items():
        lines.append("%6.2f / %-6.2f %s" % (got, top, unit))
    lines.append("TOTAL %.2f / %.2f" % (results.total, results.possible))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ writing

def make_folders(folder, mode=PRIVATE_FOLDER):
    """Create folder and its missing parents with `mode` (exactly, whatever the umask)."""
    folder = Path(folder)
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode)
        except FileExistsError:
            continue  # another worker made it first: theirs
        os.chmod(path, mode)


def default_mode():
    """0666 minus the process's umask: the mode open() gives a new file."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomically(path, data, mode=PRIVATE_FILE):
    """Write bytes or text to path through a temporary file in its folder and os.replace: never
    half a file, never a stray temporary file. mode=None: the ordinary mode of a new file, and
    missing folders made as `mkdir -p` would; otherwise missing folders are made 0700."""
    path = Path(path)
    if mode is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = default_mode()
    else:
        make_folders(path.parent)
    data = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json_atomically(path, document, mode=PRIVATE_FILE):
    """A results document as JSON, through write_atomically()."""
    write_atomically(path, json.dumps(document, indent=1) + "\n", mode)


# ------------------------------------------------------------------------- a class's outputs

def write_grades_csv(path: str | Path, grades: dict[str, GradingResults]) -> None:
    """grades.csv: student, total, one column per unit."""
    import csv
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["student", "total"] + [u.name for u in UNITS])
    for student, results in sorted(grades.items()):
        scores = results.by_unit()
        writer.writerow([csv_cell(student), "%.2f" % results.total] +
                        ["%.2f" % scores.get(u.name, (0.0, 0.0))[0] for u in UNITS])
    write_atomically(path, buffer.getvalue())


def plot_figure(totals: list[float], pass_rates: dict[str, float], possible: float = TOTAL) -> Any:
    """The matplotlib figure of the score histogram (20 bins from 0 to the possible total, or the
    highest score if above it; whole students on its y axis) and per-unit pass-rate bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1, 1.6]})
    top = max([possible, *totals])
    left.hist(totals, bins=[top * k / 20 for k in range(21)], color="#4c72b0", edgecolor="white")
    left.set_xlabel("total score")
    left.set_ylabel("students")
    left.yaxis.set_major_locator(MaxNLocator(integer=True))  # whole students
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
    return fig


def plot_png(totals: list[float], pass_rates: dict[str, float], possible: float = TOTAL) -> bytes:
    """plot_figure() as PNG bytes."""
    import matplotlib.pyplot as plt
    fig = plot_figure(totals, pass_rates, possible)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
TOP_FAILURES = 5


def failure_key(output: str) -> str:
    """What failures are grouped by: the first line of a failed test's output without the FAIL:
    its reader sees first, every number (integer, float, 1e-08) as #, so that values inside
    messages do not split a group."""
    first = clean_line(str(output).split("\n", 1)[0]).removeprefix("FAIL: ")
    return _NUMBER.sub("#", first).strip()


def common_failures(grades: dict[str, GradingResults], top: int = TOP_FAILURES) -> dict[str, list]:
    """{unit: [(message, [students])]} in UNITS order: per unit, the `top` messages failed by the
    most students (each student counted once per message), most frequent first."""
    groups: dict[str, dict[str, set]] = {}
    for student, results in grades.items():
        for check in results:
            if not check.passed:
                groups.setdefault(check.unit, {}).setdefault(failure_key(check.output), set()).add(student)
    order = [u.name for u in UNITS] + sorted(set(groups) - {u.name for u in UNITS})
    return {unit: sorted(((m, sorted(s)) for m, s in groups[unit].items()), key=lambda g: (-len(g[1]), g[0]))[:top]
            for unit in order if unit in groups}


def results_link(student: str) -> str:
    """The link from summary.html (in the grades folder) to a student's results.json, HTML-escaped."""
    from urllib.parse import quote
    return "<a href='%s/results.json'>%s</a>" % (html.escape(quote(student, safe="")),
                                                 html.escape(clean_line(student)))


def pass_rates(grades: dict[str, GradingResults]) -> dict[str, float]:
    """{unit: the share of the class with the unit's full points}, for the units anyone was graded on."""
    scores = [r.by_unit() for r in grades.values()]
    return {u.name: sum(1 for s in scores if u.name in s and s[u.name][0] >= s[u.name][1] - EPSILON) / len(grades)
            for u in UNITS if any(u.name in s for s in scores)}


def failures_html(grades: dict[str, GradingResults]) -> list[str]:
    """summary.html's "What the class got wrong": per unit, the most shared failure messages."""
    failures = common_failures(grades)
    if not failures:
        return []
    parts = ["<h2>What the class got wrong</h2><p>Per unit, the failure messages shared by the most "
             "students (numbers shown as #), with the students behind each.</p>"]
    for unit, groups in failures.items():
        parts.append("<h3>%s</h3><table border=1 cellpadding=3><tr><th>students</th><th>message</th>"
                     "<th>who</th></tr>" % html.escape(unit))
        parts += ["<tr><td>%d</td><td>%s</td><td>%s</td></tr>" % (
            len(who), html.escape(message), ", ".join(results_link(s) for s in who)) for message, who in groups]
        parts.append("</table>")
    return parts


def class_counts(grades: dict[str, GradingResults]) -> dict[str, list[tuple[str, list[str]]]]:
    """{unit: [(hint, [students])]} in UNITS order, most students first: the typical mistakes
    diagnosed in a class's results (each CheckResult's diagnosis; results.json's "extra_data")."""
    found: dict[str, dict[str, set]] = {}
    for student, results in grades.items():
        for check in results:
            if check.diagnosis and isinstance(check.diagnosis.get("hint"), str):
                found.setdefault(check.unit, {}).setdefault(check.diagnosis["hint"], set()).add(student)
    order = [u.name for u in UNITS] + sorted(set(found) - {u.name for u in UNITS})
    return {unit: sorted(((h, sorted(s)) for h, s in found[unit].items()), key=lambda g: (-len(g[1]), g[0]))
            for unit in order if unit in found}


def diagnosed_html(grades: dict[str, GradingResults]) -> list[str]:
    """summary.html's "Mistakes diagnosed": per unit, the hints the class was shown, with how many
    students got each (what to explain again)."""
    counts = class_counts(grades)
    if not counts:
        return []
    parts = ["<h2>Mistakes diagnosed</h2><p>Per unit, the typical mistakes the grader recognised (the hint "
             "students were shown), with how many students made each: what to explain again.</p>",
             "<table border=1 cellpadding=3><tr><th>unit</th><th>students</th><th>mistake</th><th>who</th></tr>"]
    for unit, groups in counts.items():
        parts += ["<tr><td>%s</td><td>%d</td><td>%s</td><td>%s</td></tr>" % (
            html.escape(unit), len(who), html.escape(clean_line(hint)), ", ".join(results_link(s) for s in who))
            for hint, who in groups]
    parts.append("</table>")
    return parts


def summary_html(grades: dict[str, GradingResults]) -> str:
    """summary.html's text: score statistics, the plot, per-unit pass rates, what the class got
    wrong, who was not graded."""
    totals = [r.total for r in grades.values()]
    possible = max([r.possible for r in grades.values() if r.status is Status.GRADED], default=TOTAL)
    rates = pass_rates(grades) if grades else {}
    png = base64.b64encode(plot_png(totals, rates, possible)).decode()
    median = sorted(totals)[len(totals) // 2] if totals else 0
    parts = ["<!doctype html><meta charset='utf-8'><title>Grades summary</title>",
             "<h1>Image captioning: %d submissions</h1>" % len(grades),
             "<p>mean %.2f, median %.2f, min %.2f, max %.2f</p>" % (
                 sum(totals) / max(1, len(totals)), median, min(totals, default=0), max(totals, default=0)),
             "<img alt='score distribution and per-unit pass rates' src='data:image/png;base64,%s'>" % png,
             "<h2>Per-unit pass rate</h2><table border=1 cellpadding=3><tr><th>unit</th><th>full points</th></tr>"]
    parts += ["<tr><td>%s</td><td>%.0f%%</td></tr>" % (html.escape(n), 100 * r) for n, r in rates.items()]
    parts.append("</table>")
    parts += diagnosed_html(grades)
    parts += failures_html(grades)
    not_graded = sorted((s, r.reason) for s, r in grades.items() if r.status is not Status.GRADED)
    if not_graded:
        parts.append("<h2>Not graded</h2><ul>")
        parts += ["<li>%s: %s</li>" % (html.escape(clean_line(s)), html.escape(clean_line(reason)))
                  for s, reason in not_graded]
        parts.append("</ul>")
    return "\n".join(parts) + "\n"


def write_summary_html(path: str | Path, grades: dict[str, GradingResults]) -> None:
    write_atomically(path, summary_html(grades))
