"""Grading a class at scale: batch on a Dask cluster (same bytes as a local run, a worker killed,
the client killed, another kit refused, the README's cluster lines as pasted), the progress bar's
ETA, the similarity report, and what summary.html tells staff (grouped failures, integer
histogram, the plots as a browser shows them), and make bench's batch figures.

Every cluster here listens on 127.0.0.1 only, its HTTP routes on a free port (a LocalCluster closed by
its fixture, or processes started from the README's lines); every process a test starts is killed by it.
"""
import html
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from autograder import report
from autograder.course import RELEASE_DIR, SOLUTIONS_DIR
from autograder.front.batch import run_batch
from autograder.results import CheckResult as Result
from autograder.results import GradingOptions, GradingResults
from autograder.sandbox import GiB, Limits
from autograder.units import BY_NAME, TOTAL
from tests.hostile import BUGGY_STEP, CORRECT_STEP, ROOT, kill_batch_once_written, make, zip_folder

UNIT = ["rnn_step_forward"]
LIMITS = Limits(check_seconds=2, import_seconds=5, memory_bytes=GiB, processes=32, submission_seconds=10)
HANG = "\ndef rnn_step_forward(*args):\n    while True:\n        pass\n"


@pytest.fixture(scope="module")
def cluster():
    import distributed
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0") as local:
        with distributed.Client(local, set_as_default=False) as client:
            yield local, client


def class_of_six(subs, tmp_path):
    make(subs, "alice", override=CORRECT_STEP)
    make(subs, "bob", override=BUGGY_STEP)
    zip_folder(make(tmp_path / "z", "carol", override=CORRECT_STEP), subs / "carol.zip", top="image_captioning")
    make(subs, "dave", raw=(RELEASE_DIR / "captioning" / "rnn_layers.py").read_bytes())  # not implemented
    zipfile.ZipFile(subs / "empty.zip", "w").close()
    erin = make(subs, "erin", override=CORRECT_STEP)
    os.replace(erin / "captioning" / "rnn_layers.py", tmp_path / "elsewhere.py")
    os.symlink(tmp_path / "elsewhere.py", erin / "captioning" / "rnn_layers.py")  # refused: a link
    return {"alice": 5.0, "bob": 0.0, "carol": 5.0, "dave": 0.0, "empty": 0.0, "erin": 0.0}


def results(out):
    """{student: results.json text without execution_time, the numbers in hidden tests' outputs as #
    (their inputs come from each grade's own seed)}."""
    texts = {}
    for path in sorted(Path(out).glob("*/results.json")):
        document = json.loads(path.read_text())
        document.pop("execution_time")
        for test in document["tests"]:
            if test["visibility"] != "visible":
                test["output"] = report.failure_key(test["output"])
        texts[path.parent.name] = json.dumps(document, indent=1)
    return texts


def wait_for_workers(client, n, seconds=60):
    deadline = time.monotonic() + seconds
    while len(client.scheduler_info()["workers"]) < n and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.mark.slow
def test_cluster_grades_byte_identical_to_local(tmp_path, cluster, capsys):
    local, client = cluster
    subs = tmp_path / "subs"
    expected = class_of_six(subs, tmp_path)
    started = time.monotonic()
    run_batch(subs, tmp_path / "local", GradingOptions(units=UNIT, limits=LIMITS), workers=2, progress=True)
    local_seconds = time.monotonic() - started
    started = time.monotonic()
    documents = run_batch(subs, tmp_path / "dask", GradingOptions(units=UNIT, limits=LIMITS),
                          scheduler=local.scheduler_address)
    print("local %.1f s, cluster %.1f s" % (local_seconds, time.monotonic() - started), file=sys.__stderr__)
    assert {s: r.total for s, r in documents.items()} == expected
    assert results(tmp_path / "dask") == results(tmp_path / "local") and len(results(tmp_path / "local")) == 6
    assert "symbolic link" in (tmp_path / "dask" / "erin" / "results.json").read_text()
    for name in ("grades.csv", "summary.html"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    runs = capsys.readouterr().err.split("0/6 [00:00 elapsed, ETA ?")[1:]
    assert len(runs) == 2 and all(re.search(r"[1-5]/6 \[00:\d\d elapsed, ETA \d\d:\d\d", run) and "6/6" in run
                                  for run in runs), runs  # the local run's bar and the cluster run's show an ETA


@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_nothing(tmp_path, cluster):
    local, client = cluster
    wait_for_workers(client, 2)
    subs, out = tmp_path / "subs", tmp_path / "grades"
    for n in range(4):
        make(subs, "slow%d" % n, override=HANG)
    for n in range(2):
        make(subs, "fast%d" % n, override=CORRECT_STEP)
    outcome = {}
    batch = threading.Thread(target=lambda: outcome.update(run_batch(
        subs, out, GradingOptions(units=UNIT, limits=LIMITS), progress=False, scheduler=local.scheduler_address)))
    batch.start()
    try:
        deadline, victim = time.monotonic() + 60, None
        while victim is None and time.monotonic() < deadline:
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy:
                victim = busy[0]
            time.sleep(0.2)
        assert victim, "no task ever ran"
        time.sleep(1.0)  # mid-task: its sandboxed children are running
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
    finally:
        batch.join(timeout=180)
    assert not batch.is_alive()
    assert {s: r.total for s, r in outcome.items()} == {"slow0": 0.0, "slow1": 0.0, "slow2": 0.0, "slow3": 0.0,
                                                          "fast0": 5.0, "fast1": 5.0}
    assert sorted(p.parent.name for p in out.glob("*/results.json")) == sorted(outcome)
    wait_for_workers(client, 2)  # the nanny restarted it


@pytest.mark.slow
def test_resume_after_the_client_is_killed(tmp_path, cluster):
    local, client = cluster
    wait_for_workers(client, 2)
    subs, out = tmp_path / "subs", tmp_path / "grades"
    for n in range(2):
        make(subs, "a%d" % n, override=CORRECT_STEP)
    for n in range(4):
        make(subs, "z%d" % n, override=HANG)
    command = [sys.executable, "-m", "autograder", "batch", str(subs), "--out", str(out), "--units", UNIT[0],
               "--check-seconds", "2", "--submission-seconds", "10", "--scheduler", local.scheduler_address]
    kill_batch_once_written(command, out, "*/results.json", 90)
    written = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/results.json")}
    assert written and len(written) < 6
    proc = subprocess.run(command + ["--similarity"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "6 submissions graded" in proc.stdout and "similarity:" in proc.stdout
    assert {s: (out / s / "results.json").stat().st_mtime_ns for s in written} == written  # kept, not regraded
    scores = {p.parent.name: json.loads(p.read_text())["score"] for p in out.glob("*/results.json")}
    assert scores == {"a0": 5.0, "a1": 5.0, "z0": 0.0, "z1": 0.0, "z2": 0.0, "z3": 0.0}
    assert (out / "similarity.html").stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
def test_a_worker_with_another_kit_is_refused_in_one_line(tmp_path):
    import distributed
    kit = tmp_path / "kit"
    for tree in ("autograder", "source"):
        shutil.copytree(ROOT / tree, kit / tree, ignore=shutil.ignore_patterns("__pycache__"))
    with open(kit / "autograder" / "units.py", "a") as f:
        f.write("# a different kit\n")
    subs = tmp_path / "subs"
    make(subs, "alice", override=CORRECT_STEP)
    with distributed.LocalCluster(n_workers=0, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0") as local:
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", local.scheduler_address,
                                   "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", "--no-nanny"],
                                  cwd=kit, env=dict(os.environ, PYTHONPATH=str(kit)), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            command = [sys.executable, "-m", "autograder", "batch", str(subs), "--out", str(tmp_path / "grades"),
                       "--units", UNIT[0], "--scheduler", local.scheduler_address]
            proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(r"cannot grade: worker tcp://127\.0\.0\.1:\d+ runs kit version [0-9a-f]{16}, "
                                        r"this client [0-9a-f]{16}: install the same kit", lines[0]), proc.stderr
    assert not (tmp_path / "grades" / "alice").exists()


def readme_cluster_lines(port, subs, out):
    """{"scheduler"|"worker"|"batch": the README's line starting it}, placeholders filled in for 127.0.0.1:port."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"To start a cluster.*?```\n(.*?)```", readme, re.S).group(1)
    lines = [re.sub(r"(^|\s+)#.*", "", line).strip() for line in block.splitlines()]  # comments dropped
    filled = [line.replace("SCHEDULER_HOST", "127.0.0.1").replace("8786", str(port))
              .replace("SUBMISSIONS_DIR", str(subs)).replace("GRADES_DIR", str(out)) for line in lines if line]
    return {next(role for role in ("batch", "scheduler", "worker") if role in line): line for line in filled}


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(line, cwd=ROOT, env=None):
    return subprocess.Popen(["bash", "-c", line], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop(procs):
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


def listening(procs):
    """The addresses every process started (with their children) listens on."""
    import psutil
    found = set()
    for proc in procs:
        top = psutil.Process(proc.pid)
        for p in [top, *top.children(recursive=True)]:
            found |= {c.laddr.ip for c in p.net_connections() if c.status == psutil.CONN_LISTEN}
    return found


@pytest.mark.slow
def test_the_readme_cluster_lines_grade_a_class_on_127_0_0_1(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "grades"
    shutil.copytree(SOLUTIONS_DIR, subs / "key")
    make(subs, "buggy", override=BUGGY_STEP)
    lines = readme_cluster_lines(free_port(), subs, out)
    assert sorted(lines) == ["batch", "scheduler", "worker"], lines
    servers = [start(lines["scheduler"]), start(lines["worker"])]
    try:
        proc = subprocess.run(["bash", "-c", lines["batch"]], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert listening(servers) == {"127.0.0.1"}
    finally:
        stop(servers)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = {p.parent.name: json.loads(p.read_text())["score"] for p in out.glob("*/results.json")}
    assert scores == pytest.approx({"key": TOTAL, "buggy": TOTAL - BY_NAME["rnn_step_forward"].points})


@pytest.mark.slow
def test_a_scheduler_without_the_kit_is_refused_in_one_line(tmp_path):
    """Dask's plain scheduler, started outside the kit, could not unpickle a single task."""
    subs, port = tmp_path / "subs", free_port()
    make(subs, "alice", override=CORRECT_STEP)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    without_kit = ("import sys; sys.path.remove(%r); from distributed.cli.dask_scheduler import main; main()"
                   % str(ROOT))  # the venv's .pth puts the kit on the path: a machine without it has none
    scheduler = start("%s -c %s --host 127.0.0.1 --port %d --no-dashboard"
                      % (sys.executable, shlex.quote(without_kit), port), cwd=tmp_path, env=env)
    try:
        command = [sys.executable, "-m", "autograder", "batch", str(subs), "--out", str(tmp_path / "grades"),
                   "--units", UNIT[0], "--scheduler", "tcp://127.0.0.1:%d" % port]
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        stop([scheduler])
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot run the kit's code (ModuleNotFoundError: No module named 'autograder')" \
        in lines[0] and "python -m autograder cluster scheduler" in lines[0], proc.stderr
    assert not (tmp_path / "grades" / "alice").exists()


def test_cluster_refuses_to_listen_on_every_interface():
    proc = subprocess.run([sys.executable, "-m", "autograder", "cluster", "scheduler", "--host", "0.0.0.0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "would listen on every interface" in proc.stderr


# ------------------------------------------------------------------------------ without a cluster

def test_local_progress_bar_shows_an_eta(tmp_path, monkeypatch, capsys):
    from tests.test_batch import fake_grading
    fake_grading(monkeypatch, [])
    for name in ("a", "b", "c"):
        (tmp_path / "subs" / name / "captioning").mkdir(parents=True)
    run_batch(tmp_path / "subs", tmp_path / "out", workers=1)
    assert re.search(r"3/3 \[00:\d\d elapsed, ETA 00:00", capsys.readouterr().err)


def starter(rel):
    return (RELEASE_DIR / "captioning" / rel).read_text()


def write_submission(root, name, rnn_layers):
    package = Path(root) / name / "captioning"
    (package / "classifiers").mkdir(parents=True)
    (package / "rnn_layers.py").write_text(rnn_layers)
    (package / "classifiers" / "rnn.py").write_text(starter("classifiers/rnn.py"))


def test_similarity_flags_a_renamed_copy_not_the_starter_code(tmp_path):
    from autograder.front.batch import discover
    from autograder.front.similarity import write_similarity_report
    subs = tmp_path / "subs"
    key = (SOLUTIONS_DIR / "captioning" / "rnn_layers.py").read_text()
    copy = key
    for old, new in [("next_h", "h_new"), ("prev_h", "h_old"), ("cache", "saved"), ("dnext_h", "grad_h"),
                     ("Wx", "W_in"), ("Wh", "W_rec")]:
        copy = re.sub(r"\b%s\b" % old, new, copy)
    assert copy != key
    write_submission(subs, "alice", key)
    write_submission(subs, "carol", copy)
    write_submission(subs, "dave", starter("rnn_layers.py"))  # dave and erin share only the starter code
    write_submission(subs, "erin", starter("rnn_layers.py").replace("raise NotImplementedError()",
                                                                     "return None, None", 1) + CORRECT_STEP)
    out = tmp_path / "grades" / "similarity.html"
    flagged = write_similarity_report(out, discover(subs), threshold=0.5)
    assert [(p["a"], p["b"]) for p in flagged] == [("alice", "carol")] and flagged[0]["similarity"] > 0.9
    text = out.read_text()
    assert "1 pair(s) flagged" in text and "<mark>" in text and "h_new" in text and "next_h" in text
    row = re.search(r"<tr><td>dave</td><td>erin</td><td>(\d+)%", text)
    assert row and int(row.group(1)) == 0
    assert out.stat().st_mode & 0o777 == 0o600


def test_similarity_highlights_only_code_not_in_the_starter_files(tmp_path):
    from autograder.front.batch import discover
    from autograder.front.similarity import write_similarity_report
    key = (SOLUTIONS_DIR / "captioning" / "rnn_layers.py").read_text()
    for name in ("alice", "bob"):  # the same work: everything but the starter code is shared
        write_submission(tmp_path / "subs", name, key)
    out = tmp_path / "similarity.html"
    write_similarity_report(out, discover(tmp_path / "subs"), threshold=0.5)
    pieces = [html.unescape(m) for m in re.findall(r"<mark>(.*?)</mark>", out.read_text(), re.S)]
    assert pieces and "np.tanh(" in "".join(pieces)
    starter_lines = {line.strip() for line in starter("rnn_layers.py").split("\n")}
    for piece in pieces:
        assert not [line for line in piece.split("\n") if line.strip() in starter_lines], piece
    assert "import numpy" not in "".join(pieces) and '"""One timestep' not in "".join(pieces)


def made_up_class():
    """Documents of a class: failure messages that differ only by their numbers group together."""
    def doc(step_message, lstm_message=None):
        tests = [Result("rnn_step_forward", "rnn_step_forward: values", 0.0 if step_message else 5.0, 5.0,
                        ("FAIL: " + step_message) if step_message else "PASS: ok", True),
                 Result("lstm_forward", "lstm_forward: values", 0.0 if lstm_message else 4.0, 4.0,
                        ("FAIL: " + lstm_message) if lstm_message else "PASS: ok", False)]
        return GradingResults(tuple(tests), seconds=1.0)
    return {
        "ann": doc("relative error 3.2e-01 > 1e-08"),
        "ben": doc("relative error 0.75 > 1e-08", "not implemented yet"),
        "cy <x>": doc("relative error 12 > 1e-08", "not implemented yet"),
        "dee": doc("shape (2, 3) instead of (2, 4)"),
        "eve": doc(None),
    }


def test_summary_groups_failures_with_counts_and_links(tmp_path):
    documents = made_up_class()
    failures = report.common_failures(documents)
    assert failures["rnn_step_forward"] == [("relative error # > #", ["ann", "ben", "cy <x>"]),
                                            ("shape (#, #) instead of (#, #)", ["dee"])]
    assert failures["lstm_forward"] == [("not implemented yet", ["ben", "cy <x>"])]
    path = tmp_path / "summary.html"
    report.write_summary_html(path, documents)
    text = path.read_text()
    assert "<tr><td>3</td><td>relative error # &gt; #</td><td><a href='ann/results.json'>ann</a>" in text
    assert "<a href='cy%20%3Cx%3E/results.json'>cy &lt;x&gt;</a>" in text
    assert text.index("<h3>rnn_step_forward</h3>") < text.index("<h3>lstm_forward</h3>")
    figure = report.plot_figure([5.0, 5.0, 4.0, 0.0, 9.0], {"rnn_step_forward": 0.2, "lstm_forward": 0.6})
    ticks = figure.axes[0].get_yticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_the_histogram_shows_every_score_up_to_the_total():
    """Scores above 105 of 160 (the best students) were once binned out of the histogram."""
    totals = [0.0, 37.5, 104.0, 118.0, 150.25, 159.0, TOTAL]
    histogram = report.plot_figure(totals, {"rnn_step_forward": 0.5}).axes[0]
    assert sum(bar.get_height() for bar in histogram.patches) == len(totals)
    assert histogram.patches[-1].get_x() + histogram.patches[-1].get_width() == pytest.approx(TOTAL)


def chromium():
    """The headless browser `make test` installs (Debian package chromium)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is not installed: `make test` installs it as root (apt-get install chromium)")
    return found


@pytest.mark.slow
def test_summary_plots_are_visible_in_a_browser(tmp_path):
    from PIL import Image
    browser = chromium()
    page = tmp_path / "summary.html"
    report.write_summary_html(page, made_up_class())
    shot = tmp_path / "shot.png"
    proc = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             "--user-data-dir=%s" % (tmp_path / "profile"), "--screenshot=%s" % shot,
                             "--window-size=1200,900", page.as_uri()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=120)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the browser's helpers too
        except ProcessLookupError:
            pass
        proc.wait()
    import numpy as np
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 900)
    pixels = np.asarray(image).astype(int)

    def near(colour):
        return int((np.abs(pixels - np.array(colour)).max(axis=2) < 12).sum())
    assert near((0x4c, 0x72, 0xb0)) > 500, "the score histogram is not visible"
    assert near((0x55, 0xa8, 0x68)) > 500, "the per-unit pass-rate bars are not visible"


@pytest.mark.slow
def test_the_batch_benchmarks_run_on_two_submissions(capsys):
    """make bench's batch figures (bench/batch_scale.py, bench/grading_speed.py's batch), shrunk to
    two answer keys on one unit: every row at full marks."""
    from bench import batch_scale, grading_speed
    assert batch_scale.main(["--n", "2", "--units", UNIT[0]]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if re.search(r"\d\.\d\dx", line)]
    assert len(rows) == 3 and all(row.split()[-1] == "%.2f" % BY_NAME[UNIT[0]].points for row in rows), rows
    assert grading_speed.time_batch(2, 2, UNIT) > 0  # it asserts full marks itself
