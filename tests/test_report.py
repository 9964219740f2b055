"""report.py: cleaned student text, formula-proof grades.csv, tags, private modes, atomic writes.

No submission is graded here: the results are made up, so these tests take milliseconds.
"""
import csv
import json
import os
import stat

import pytest

from autograder import report
from autograder.report import (
    csv_cell,
    plot_figure,
    summary_html,
    table,
    write_atomically,
    write_grades_csv,
    write_json_atomically,
    write_summary_html,
)
from autograder.results import CheckResult, GradingResults, Status
from autograder.text import clean_line, clean_text
from autograder.units import TOTAL

FORGERIES = [
    "PASS: fine\nTOTAL 100.00 / 100.00",
    "fine\rTOTAL 100.00 / 100.00",
    "fine\r\nTOTAL 100.00 / 100.00",
    "fine\x1b[2K\x1b[1GTOTAL 100.00 / 100.00",
    "fine\x1b[1A\x1b[2K\rTOTAL 100.00 / 100.00",
    "fine\x0bTOTAL 100.00 / 100.00",
    "fine\x0cTOTAL 100.00 / 100.00",
    "fine\x85TOTAL 100.00 / 100.00",
    "fine\u2028TOTAL 100.00 / 100.00",
    "fine\u2029TOTAL 100.00 / 100.00",
    "fine\x1cTOTAL 100.00 / 100.00",
    "fine\x08\x08\x08\x08TOTAL 100.00 / 100.00",
    "fine\x1b]8;;http://x\x07TOTAL 100.00 / 100.00\x1b]8;;\x07",
    "\u202eTOTAL 100.00 / 100.00",
]


def result(output, unit="rnn_step_forward", score=0.0, public=True):
    return CheckResult(unit, unit + ": a check", score, 5.0, output, public)


def graded(*checks, seconds=1.0):
    return GradingResults(tuple(checks), seconds=seconds)


def not_graded(reason):
    return GradingResults.not_gradable(reason)


@pytest.mark.parametrize("output", FORGERIES)
def test_a_student_message_cannot_forge_a_table_line(output):
    text = table(graded(result("FAIL: your code printed: " + output)))
    lines = text.split("\n")
    assert [line for line in lines if line.startswith("TOTAL")] == ["TOTAL 0.00 / 5.00"]
    assert lines[-1] == "TOTAL 0.00 / 5.00"
    assert not any(c in text for c in "\r\x1b\x0b\x0c\x85\u2028\u2029\x08\x1c\u202e")
    body = lines[1:lines.index("")]
    assert body and all(line.startswith(" " * 15) for line in body)


def test_cleaning_keeps_ordinary_text():
    message = "FAIL: relative error 3.2e-01 > 1e-08\n\twarning: café ✓ — fine"
    assert clean_text(message) == message
    assert clean_line(message) == "FAIL: relative error 3.2e-01 > 1e-08  warning: café ✓ — fine"
    assert clean_text("a\x00b\x7fc\x9fd\x1b[31me\x9b2Jf") == "abcdef"


def test_gradescope_document_tags_units_and_is_clean():
    results = graded(result("PASS", score=5.0), result("x\x1b[31my\rz", unit="lstm_forward", public=False),
                     seconds=1.234)
    document = results.to_gradescope()
    assert [t["tags"] for t in document["tests"]] == [["rnn_step_forward"], ["lstm_forward"]]
    assert document["tests"][1]["output"] == "xy\nz"
    back = GradingResults.from_document(json.loads(json.dumps(document)))
    assert back.by_unit() == {"rnn_step_forward": (5.0, 5.0), "lstm_forward": (0.0, 5.0)}
    assert [c.passed for c in back] == [True, False] and [c.public for c in back] == [True, False]
    assert back.to_gradescope() == document  # read back, written again: the same document
    failed = not_graded("bad\nname\x1b[2J").to_gradescope()
    assert failed["output"] == "Not graded: bad name" and failed["tests"] == []
    assert GradingResults.from_document(failed).status is Status.NOT_GRADABLE
    assert GradingResults.from_document({"score": 1, "tests": [{"name": "no tags", "score": 1}]}) is None


def test_students_read_what_was_graded_and_staff_keep_the_isolation_layers():
    layers = ("container mode, the container the outer boundary (bubblewrap does not work here: bwrap: Creating new "
              "namespace failed: Operation not permitted)", "rlimits (address space, processes, file size)")
    results = graded(result("PASS", score=5.0), result("FAIL", unit="lstm_forward")).timed(2.0, layers)
    document = results.to_gradescope()
    first = document["output"].split("\n")[0]
    assert first.startswith("Graded automatically: 2 parts of your captioning package, 5 of 10 points."), first
    assert "bwrap" not in document["output"] and "rlimits" not in document["output"]
    assert document["extra_data"] == {"isolation": list(layers)}  # results.json's staff-only field
    assert GradingResults.from_document(json.loads(json.dumps(document))).isolation == layers


@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\r=1",
                                  "=cmd|' /C calc'!A0"])
def test_csv_cells_are_never_formulas(tmp_path, name):
    path = tmp_path / "grades.csv"
    write_grades_csv(path, {name: graded(result("PASS", score=5.0)), "plain": not_graded("x")})
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    cells = [row[0] for row in rows[1:]]
    assert sorted(cells) == sorted([csv_cell(name), "plain"])
    assert all(not c.startswith(report.CSV_FORMULA_STARTS) for c in cells)
    assert csv_cell(name).startswith("'") or csv_cell(name) == " x"  # a tab becomes a space
    student_row = next(row for row in rows if row[0] != "plain" and row[0] != "student")
    assert student_row[1] == "5.00" and student_row[rows[0].index("rnn_step_forward")] == "5.00"
    assert csv_cell(5.0) == 5.0 and csv_cell("alice") == "alice" and csv_cell("a\nb") == "a b"


def test_outputs_are_private_and_atomic(tmp_path):
    out = tmp_path / "grades" / "deep"
    grades = {"alice": graded(result("PASS", score=5.0)), "<b>bob\x1b[2J": not_graded("no package")}
    old = os.umask(0o022)
    try:
        write_json_atomically(out / "alice" / "results.json", grades["alice"].to_gradescope())
        write_grades_csv(out / "grades.csv", grades)
        write_summary_html(out / "summary.html", grades)
        write_atomically(tmp_path / "public" / "results.json", "{}", mode=None)  # the CLI's --results
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    for f in ("alice/results.json", "grades.csv", "summary.html"):
        assert mode(out / f) == 0o600, f
    for folder in (tmp_path / "grades", out, out / "alice"):
        assert mode(folder) == 0o700, folder
    assert mode(tmp_path / "public" / "results.json") == 0o644 and mode(tmp_path / "public") == 0o755
    assert json.loads((out / "alice" / "results.json").read_text()) == grades["alice"].to_gradescope()
    summary = (out / "summary.html").read_text()
    assert "&lt;b&gt;bob" in summary and "\x1b" not in summary and "<b>bob" not in summary
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json_atomically(path, {"score": 1})

    def broken(*args):
        raise OSError("disk full")
    monkeypatch.setattr(report.os, "fsync", broken)
    with pytest.raises(OSError, match="disk full"):
        write_json_atomically(path, {"score": 2})
    assert json.loads(path.read_text()) == {"score": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_cli_results_file_has_the_ordinary_mode_and_a_clean_reason(tmp_path, capsys):
    from autograder.front.cli import main
    results = tmp_path / "out" / "results.json"
    old = os.umask(0o022)
    try:
        assert main([str(tmp_path / "missing\x1b[2Jsub.zip"), "--results", str(results)]) == 2
    finally:
        os.umask(old)
    assert stat.S_IMODE(results.stat().st_mode) == 0o644
    document = json.loads(results.read_text())
    assert document["score"] == 0 and document["output"].startswith("Not graded: ") and "\x1b" not in document["output"]
    assert "\x1b" not in capsys.readouterr().err


def test_the_histogram_shows_every_score_up_to_the_total():
    """A class with scores above 105 (of the 160 the kit grades): every student is in a bar."""
    scores = [12.0, 57.5, 104.0, 106.0, 131.25, 150.0, 160.0]
    grades = {"s%d" % i: graded(CheckResult("rnn_step_forward", "a check", score, TOTAL, "", True))
              for i, score in enumerate(scores)}
    assert all(r.possible == TOTAL for r in grades.values())
    totals = [r.total for r in grades.values()]
    figure = plot_figure(totals, {"rnn_step_forward": 1 / 7}, max(r.possible for r in grades.values()))
    bars = figure.axes[0].patches
    assert sum(bar.get_height() for bar in bars) == len(scores)
    assert max(bar.get_x() + bar.get_width() for bar in bars) == pytest.approx(TOTAL)
    assert "max 160.00" in summary_html(grades)

def test_summary_counts_the_diagnosed_mistakes_per_unit():
    """results.json keeps a hint as the test's extra_data (read back as it was written); summary.html
    counts students per hint."""
    gates = {"mistakes": ["lstm_gate_order_ifgo"], "hint": "gates <in> another order"}
    carry = {"mistakes": ["rnn_backward_no_carry"], "hint": "no carry"}

    def student(*diagnoses):
        return graded(*(CheckResult(unit, unit + ": a check", 0.0, 5.0, "FAIL: x\nThis looks like ...", True, d)
                        for unit, d in diagnoses))
    grades = {"s%d" % i: student(("lstm_step_forward", gates)) for i in range(12)}
    grades["t"] = student(("lstm_step_forward", gates), ("rnn_backward", carry))
    grades["u"] = student(("rnn_backward", None))
    assert grades["t"].to_gradescope()["tests"][1]["extra_data"] == {"diagnosis": carry}
    assert "extra_data" not in grades["u"].to_gradescope()["tests"][0]
    grades = {s: GradingResults.from_document(json.loads(json.dumps(r.to_gradescope()))) for s, r in grades.items()}
    counts = report.class_counts(grades)
    assert list(counts) == ["rnn_backward", "lstm_step_forward"]  # UNITS order
    assert [(h, len(who)) for h, who in counts["lstm_step_forward"]] == [("gates <in> another order", 13)]
    assert counts["rnn_backward"] == [("no carry", ["t"])]
    html = report.summary_html(grades)
    assert "<h2>Mistakes diagnosed</h2>" in html
    assert "<td>lstm_step_forward</td><td>13</td><td>gates &lt;in&gt; another order</td>" in html
    assert "Mistakes diagnosed" not in report.summary_html({"u": grades["u"]})
