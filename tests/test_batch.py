"""python -m autograder batch: layouts, outputs, resume, --force, and a run killed midway."""
import csv
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from autograder.course import ASSIGNMENT
from autograder.front.batch import discover, run_batch
from autograder.grade import GraderError
from autograder.results import GradingOptions
from autograder.sandbox import GiB, Limits, OutOfMemory
from tests.hostile import BUGGY_STEP, CORRECT_STEP, ROOT, kill_batch_once_written, make, zip_folder

UNIT = ["rnn_step_forward"]
LIMITS = Limits(check_seconds=2, import_seconds=5, memory_bytes=GiB, processes=32, submission_seconds=10)


def test_layouts(tmp_path):
    subs = tmp_path / "subs"
    make(subs, "alice", override=CORRECT_STEP)
    zip_folder(make(tmp_path / "z", "bob", override=BUGGY_STEP), subs / "bob.zip")
    course = tmp_path / "course"
    make(course / "submitted" / "carol", ASSIGNMENT, override=CORRECT_STEP)
    assert [s for s, _ in discover(subs)] == ["alice", "bob"]
    assert discover(course) == [("carol", course / "submitted" / "carol" / ASSIGNMENT)]
    documents = run_batch(subs, tmp_path / "out", GradingOptions(units=UNIT, limits=LIMITS), progress=False)
    assert documents["alice"].total == pytest.approx(5) and documents["bob"].total == 0
    documents = run_batch(course, tmp_path / "out2", GradingOptions(units=UNIT, limits=LIMITS), progress=False)
    assert documents["carol"].total == pytest.approx(5)


def test_cli_outputs_resume_and_force(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "grades"
    make(subs, "alice", override=CORRECT_STEP)
    make(subs, "bob", override=BUGGY_STEP)
    zipfile.ZipFile(subs / "empty.zip", "w").close()
    command = [sys.executable, "-m", "autograder", "batch", str(subs), "--out", str(out),
               "--workers", "2", "--units", "rnn_step_forward"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "3 submissions graded" in proc.stdout
    with open(out / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["student"]: float(r["total"]) for r in rows} == {"alice": 5.0, "bob": 0.0, "empty": 0.0}
    assert float(rows[0]["rnn_step_forward"]) == 5.0 and "lstm_forward" in rows[0]
    empty = json.loads((out / "empty" / "results.json").read_text())
    assert empty["score"] == 0 and "no captioning/ package" in empty["output"]
    summary = (out / "summary.html").read_text()
    assert "data:image/png;base64," in summary and "empty" in summary

    # Resume: nothing is graded again; a missing results.json is; --force grades everything.
    stamps = {s: (out / s / "results.json").stat().st_mtime_ns for s in ("alice", "bob", "empty")}
    (out / "bob" / "results.json").unlink()
    assert subprocess.run(command, cwd=ROOT, capture_output=True, timeout=120).returncode == 0
    assert (out / "alice" / "results.json").stat().st_mtime_ns == stamps["alice"]
    assert json.loads((out / "bob" / "results.json").read_text())["score"] == 0
    assert subprocess.run(command + ["--force"], cwd=ROOT, capture_output=True, timeout=120).returncode == 0
    assert (out / "alice" / "results.json").stat().st_mtime_ns != stamps["alice"]


@pytest.mark.slow
def test_killed_midway_loses_nothing(tmp_path):
    """Nor leaves anything behind: the next run removes the killed grader's temporary folders."""
    subs, out, tmp = tmp_path / "subs", tmp_path / "grades", tmp_path / "tmp"
    tmp.mkdir()
    for n in range(3):
        make(subs, "a%d" % n, override=CORRECT_STEP)
    for n in range(3):  # slow ones: each burns its whole 2 s check limits
        make(subs, "z%d" % n, override="\ndef rnn_step_forward(*args):\n    while True:\n        pass\n")
    command = [sys.executable, "-m", "autograder", "batch", str(subs), "--out", str(out),
               "--workers", "1", "--units", "rnn_step_forward", "--check-seconds", "2", "--submission-seconds", "5"]
    kill_batch_once_written(command, out, "a*/results.json", 60, env=dict(os.environ, TMPDIR=str(tmp)))
    assert list(tmp.glob("grader-inside-*")), "the killed grader left nothing: the test proves nothing"
    written = sorted(p.parent.name for p in out.glob("*/results.json"))
    assert written and len(written) < 6
    for student in written:
        json.loads((out / student / "results.json").read_text())  # whole files only
    time.sleep(0.5)  # the sandbox children die with the grader (PR_SET_PDEATHSIG)
    assert subprocess.run(command, cwd=ROOT, capture_output=True, timeout=180,
                          env=dict(os.environ, TMPDIR=str(tmp))).returncode == 0
    scores = {p.parent.name: json.loads(p.read_text())["score"] for p in out.glob("*/results.json")}
    assert scores == {"a0": 5.0, "a1": 5.0, "a2": 5.0, "z0": 0.0, "z1": 0.0, "z2": 0.0}
    assert not [p.name for p in tmp.iterdir() if p.name.startswith(("grade-", "grader-inside-"))]


def fake_grading(monkeypatch, calls):
    """batch.grade_student replaced: every submission gets one passing test of lstm_forward whose
    name does not start with its unit (so only the tags can say which unit it is)."""
    from autograder.front import batch
    from autograder.results import CheckResult, GradingResults

    def grade_student(path, options):
        calls.append(Path(path).name)
        check = CheckResult("lstm_forward", "a check\x1b[2J\nTOTAL 100.00 / 100.00", 4.0, 4.0, "PASS\rTOTAL", True)
        return GradingResults((check,), seconds=0.5)
    monkeypatch.setattr(batch, "grade_student", grade_student)


def test_units_from_tags_csv_neutralised_private_outputs(tmp_path, monkeypatch):
    calls = []
    fake_grading(monkeypatch, calls)
    subs, out = tmp_path / "subs", tmp_path / "grades"
    for name in ('=HYPERLINK("evil.example","click")', "@SUM(A1)", "alice", "evil\nname"):
        (subs / name / "captioning").mkdir(parents=True)
    old = os.umask(0o022)
    try:
        documents = run_batch(subs, out, progress=False)
    finally:
        os.umask(old)
    assert len(calls) == 4
    for results in documents.values():
        document = results.to_gradescope()
        assert [t["tags"] for t in document["tests"]] == [["lstm_forward"]]
        assert "\x1b" not in json.dumps(document) and "\r" not in document["tests"][0]["output"]
    with open(out / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["lstm_forward"]) == 4.0 and float(r["total"]) == 4.0 for r in rows)
    assert sorted(r["student"] for r in rows) == sorted(
        ["'=HYPERLINK(\"evil.example\",\"click\")", "'@SUM(A1)", "alice", "evil name"])
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert mode(out) == 0o700 and mode(out / "alice") == 0o700
    assert {mode(p) for p in out.rglob("*") if p.is_file()} == {0o600}
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]

    # results.json from an older grader (no tags) is graded again; current ones are kept
    old_document = {"score": 4.0, "tests": [{"name": "lstm_forward: x", "score": 4.0, "max_score": 4.0, "output": ""}]}
    (out / "alice" / "results.json").write_text(json.dumps(old_document))
    calls.clear()
    run_batch(subs, out, progress=False)
    assert calls == ["alice"]


def test_a_submission_killed_at_import_costs_that_submission_only(tmp_path):
    """A process killed by SIGKILL while it imports the submission, twice, where the reference package
    imports in its place: the submission's fault, its checks fail, and the batch goes on with the
    class (neither SandboxError, which would stop it, nor a grader-side failure)."""
    subs, out = tmp_path / "subs", tmp_path / "grades"
    make(subs, "alice", override=CORRECT_STEP)
    make(subs, "mallory", prelude="import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    command = [sys.executable, "-m", "autograder", "batch", str(subs), "--out", str(out),
               "--workers", "1", "--units", "rnn_step_forward"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "alice" / "results.json").read_text())["score"] == 5
    mallory = json.loads((out / "mallory" / "results.json").read_text())
    assert mallory["score"] == 0
    assert "killed (SIGKILL) twice while importing your package" in mallory["tests"][0]["output"]


def test_a_machine_out_of_memory_costs_that_submission_only(tmp_path, monkeypatch, capsys):
    """The machine out of memory for the reference package too (OutOfMemory) is a grader-side failure:
    that submission is not graded (graded again on the next run), the batch goes on with the class."""
    from autograder import grade as grading
    real = grading.grade

    def grade(path, options):
        if Path(path).name == "mallory":
            raise OutOfMemory("the grading machine ran out of memory")
        return real(path, options)
    monkeypatch.setattr(grading, "grade", grade)
    subs, out = tmp_path / "subs", tmp_path / "grades"
    for name in ("alice", "mallory"):
        make(subs, name, override=CORRECT_STEP)
    with pytest.raises(GraderError, match="1 submission"):
        run_batch(subs, out, GradingOptions(units=UNIT, limits=LIMITS), workers=1, progress=False)
    assert "not graded (grader error, run again): mallory: OutOfMemory: the grading machine ran out of memory" \
        in capsys.readouterr().err
    assert json.loads((out / "alice" / "results.json").read_text())["score"] == 5
    assert not (out / "mallory" / "results.json").exists()
