"""Every output format of the grader, from a list of TestResult or from results documents.

- table(): the terminal per-test table (also printed by the nbgrader front end);
- gradescope() / failure_document(): Gradescope's results.json, each test tagged with its unit
  ("tags": [unit]), which is where grades.csv and summary.html read units from;
- write_grades_csv(), write_summary_html() (with plot_png()): a class's grades;
- write_atomically() / write_json_atomically(): the one writer of every output file.

Student-controlled text (test outputs, which quote the submission's messages and prints, reasons
for not grading, student names) is cleaned before it reaches any output: clean_line() for text
that must stay on one line, clean_text() for multi-line outputs (keeps \\n and \\t). Both drop ANSI
escape sequences and every other C0/C1 control, and turn CR and Unicode line/paragraph separators
into line breaks (or spaces), so a submission cannot forge a line of the table. In grades.csv,
text cells starting with = + - @ TAB or CR get a leading single quote (spreadsheet formulas).

File modes: grading outputs written for staff (per-student results.json, grades.csv,
summary.html) hold a class's grades: they are created 0600, and the folders we create for them
0700 (existing folders keep their modes). The CLI's --results file is different: its path is
chosen by whoever runs the grader (Gradescope's harness, a student self-checking, a script), and
it holds one submission's results only, so it gets the ordinary mode of a new file (0666 minus
the umask), as `open()` would give; its folder's permissions decide who can reach it.
"""
import base64
import html
import io
import json
import os
import re
import tempfile
from pathlib import Path

from .diagnosis import class_html  # issue #22 hook
from .units import TOTAL, UNITS, WRITTEN

PRIVATE_FILE, PRIVATE_FOLDER = 0o600, 0o700
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_ANSI = re.compile(r"""
    \x1b\[[0-?]*[ -/]*[@-~]                  # CSI: colours, cursor moves, erase line
  | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?       # OSC: window titles, hyperlinks
  | \x1b[PX^_][^\x1b]*(?:\x1b\\)?            # DCS, SOS, PM, APC strings
  | \x1b[ -/]*[0-~]?                         # other escapes (and a lone ESC)
  | \x9b[0-?]*[ -/]*[@-~]                    # 8-bit CSI
""", re.VERBOSE)
_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# C0 and C1 controls, DEL, and the bidirectional overrides that reorder a line on screen
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text(text):
    """Multi-line student text, safe to print or store: only \\n and \\t remain as controls."""
    text = _ANSI.sub("", str(text))
    text = _BREAKS.sub("\n", text)
    return _CONTROLS.sub("", text)


def clean_line(text):
    """One line of student text: clean_text() with line breaks and tabs as spaces."""
    return re.sub(r"[\n\t]", " ", clean_text(text))


def csv_cell(value):
    """A grades.csv cell: numbers as they are, text cleaned and kept from being a formula."""
    if isinstance(value, (int, float)):
        return value
    text = clean_line(value)  # tabs and CRs become spaces: " =1" is checked like "=1"
    return "'" + text if text.lstrip(" ").startswith(CSV_FORMULA_STARTS) else text


# ---------------------------------------------------------------------------- per-submission

def unit_scores(results):
    """{unit name: (score, max score)} in UNITS order, for the units that were graded."""
    scores = {}
    for r in results:
        got, top = scores.get(r.unit, (0.0, 0.0))
        scores[r.unit] = (got + r.score, top + r.max_score)
    return {u.name: scores[u.name] for u in UNITS if u.name in scores}


def table(results, hidden_details=True):
    """A per-test table, then per-unit and total scores, as text. Without hidden_details, the hidden
    tests of each unit are one line of points, without their names and outputs.

    Every line of a test's output is indented, and the output is cleaned first, so nothing a
    submission prints can start a line of its own (a forged TOTAL, say).
    """
    indent = " " * 15
    lines = []
    for r in results:
        if r.public or hidden_details:
            hidden = "" if r.public else "  [hidden]"
            lines.append("%6.2f / %-5.2f %s%s" % (r.score, r.max_score, clean_line(r.name), hidden))
            lines.extend(indent + line for line in (clean_text(r.output).split("\n")))
    if not hidden_details:
        for unit, (got, top) in unit_scores([r for r in results if not r.public]).items():
            lines.append("%6.2f / %-5.2f %s: hidden tests (shown when the course releases them)" % (got, top, unit))
    lines.append("")
    for unit, (got, top) in unit_scores(results).items():
        lines.append("%6.2f / %-6.2f %s" % (got, top, unit))
    total, top = sum(r.score for r in results), sum(r.max_score for r in results)
    lines.append("TOTAL %.2f / %.2f" % (total, top))
    return "\n".join(lines)


def gradescope(results, seconds, isolation=None):
    """The results.json document in Gradescope's format; "tags" holds each test's unit; the output
    header names the isolation layers the code ran under, when given."""
    document = {
        "score": round(sum(r.score for r in results), 4),
        "execution_time": round(seconds, 2),
        "tests": [{"name": clean_line(r.name), "score": round(r.score, 4), "max_score": round(r.max_score, 4),
                   "output": clean_text(r.output), "visibility": "visible" if r.public else "after_published",
                   "tags": [r.unit],
                   **({"extra_data": {"diagnosis": r.diagnosis}} if getattr(r, "diagnosis", None) else {})}  # issue #22
                  for r in results],
    }
    notes = ["Your code ran in a sandbox: " + "; ".join(isolation) + "."] if isolation else []
    notes.append("The autograder grades %g points; the %d written questions (%g points, %g in all) are graded by "
                 "hand in the written-answers assignment, from the PDF that python -m captioning.submit writes."
                 % (TOTAL, len(WRITTEN), sum(WRITTEN.values()), TOTAL + sum(WRITTEN.values())))
    document["output"] = clean_text("\n".join(notes))
    return document


def failure_document(reason, seconds=0.0):
    """results.json of a submission that could not be graded: score 0 and why, in one line."""
    return {"score": 0.0, "execution_time": round(seconds, 2), "output": "Not graded: " + clean_line(reason),
            "tests": []}


def document_unit_scores(document):
    """{unit: (score, max)} of one results document, from each test's "tags": [unit]."""
    scores = {}
    for test in document.get("tests", []):
        for unit in test.get("tags", [])[:1]:
            got, top = scores.get(unit, (0.0, 0.0))
            scores[unit] = (got + test["score"], top + test["max_score"])
    return scores


def is_current(document):
    """Whether a results document has the tags this version reads units from (older ones don't)."""
    return isinstance(document, dict) and all(isinstance(t, dict) and t.get("tags") for t in document.get("tests", []))


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

def write_grades_csv(path, documents):
    """grades.csv: student, total, one column per unit (from the tests' tags)."""
    import csv
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["student", "total"] + [u.name for u in UNITS])
    for student, document in sorted(documents.items()):
        scores = document_unit_scores(document)
        writer.writerow([csv_cell(student), "%.2f" % document.get("score", 0.0)] +
                        ["%.2f" % scores.get(u.name, (0.0, 0.0))[0] for u in UNITS])
    write_atomically(path, buffer.getvalue())


def plot_figure(totals, pass_rates, possible=TOTAL):
    """The matplotlib figure of the score histogram (20 bins from 0 to the possible total, whole
    students on its y axis) and per-unit pass-rate bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1, 1.6]})
    from matplotlib.ticker import MaxNLocator
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


def plot_png(totals, pass_rates):
    """plot_figure() as PNG bytes."""
    import matplotlib.pyplot as plt
    fig = plot_figure(totals, pass_rates)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
TOP_FAILURES = 5


def failure_key(output):
    """What failures are grouped by: a test output's first line without its FAIL: prefix, every
    number (integer, float, 1e-08) as #, so that values inside messages do not split a group."""
    first = clean_line(str(output).split("\n", 1)[0])
    first = first[len("FAIL: "):] if first.startswith("FAIL: ") else first
    return _NUMBER.sub("#", first).strip()


def common_failures(documents, top=TOP_FAILURES):
    """{unit: [(message, [students])]} in UNITS order: per unit, the `top` messages failed by the
    most students (each student counted once per message), most frequent first."""
    groups = {}
    for student, document in documents.items():
        for test in document.get("tests", []):
            if test.get("score", 0) >= test.get("max_score", 0) - 1e-9 or not test.get("tags"):
                continue
            students = groups.setdefault(test["tags"][0], {}).setdefault(failure_key(test.get("output", "")), set())
            students.add(student)
    order = [u.name for u in UNITS] + sorted(set(groups) - {u.name for u in UNITS})
    return {unit: sorted(((m, sorted(s)) for m, s in groups[unit].items()), key=lambda g: (-len(g[1]), g[0]))[:top]
            for unit in order if unit in groups}


def results_link(student):
    """The link from summary.html (in the grades folder) to a student's results.json, HTML-escaped."""
    from urllib.parse import quote
    return "<a href='%s/results.json'>%s</a>" % (html.escape(quote(student, safe="")),
                                                 html.escape(clean_line(student)))


def summary_html(documents):
    """summary.html's text: score statistics, the plot, per-unit pass rates, who was not graded."""
    totals = [d.get("score", 0.0) for d in documents.values()]
    scores = {s: document_unit_scores(d) for s, d in documents.items()}
    graded_units = [u for u in UNITS if any(u.name in s for s in scores.values())]
    pass_rates = {}
    for u in graded_units:
        full = [s[u.name] for s in scores.values() if u.name in s]
        pass_rates[u.name] = sum(1 for got, top in full if got >= top - 1e-9) / max(1, len(documents))
    png = base64.b64encode(plot_png(totals, pass_rates)).decode()
    not_graded = sorted((s, d.get("output", "")) for s, d in documents.items() if not d.get("tests"))
    mean = sum(totals) / len(totals) if totals else 0.0
    median = sorted(totals)[len(totals) // 2] if totals else 0
    parts = ["<!doctype html><meta charset='utf-8'><title>Grades summary</title>",
             "<h1>Image captioning: %d submissions</h1>" % len(documents),
             "<p>mean %.2f, median %.2f, min %.2f, max %.2f</p>" % (
                 mean, median, min(totals, default=0), max(totals, default=0)),
             "<img alt='score distribution and per-unit pass rates' src='data:image/png;base64,%s'>" % png,
             "<h2>Per-unit pass rate</h2><table border=1 cellpadding=3><tr><th>unit</th><th>full points</th></tr>"]
    parts += ["<tr><td>%s</td><td>%.0f%%</td></tr>" % (html.escape(n), 100 * r) for n, r in pass_rates.items()]
    parts.append("</table>")
    parts += class_html(documents)  # issue #22 hook: the diagnosed mistakes, counted per unit
    failures = common_failures(documents)
    if failures:
        parts.append("<h2>What the class got wrong</h2><p>Per unit, the failure messages shared by the most "
                     "students (numbers shown as #), with the students behind each.</p>")
        for unit, groups in failures.items():
            parts.append("<h3>%s</h3><table border=1 cellpadding=3><tr><th>students</th><th>message</th>"
                         "<th>who</th></tr>" % html.escape(unit))
            parts += ["<tr><td>%d</td><td>%s</td><td>%s</td></tr>" % (
                len(who), html.escape(message), ", ".join(results_link(s) for s in who)) for message, who in groups]
            parts.append("</table>")
    if not_graded:
        parts.append("<h2>Not graded</h2><ul>")
        parts += ["<li>%s: %s</li>" % (html.escape(clean_line(s)), html.escape(clean_line(o))) for s, o in not_graded]
        parts.append("</ul>")
    return "\n".join(parts) + "\n"


def write_summary_html(path, documents):
    write_atomically(path, summary_html(documents))
