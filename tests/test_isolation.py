"""Isolation promises not tested elsewhere, and attacks on the newer parts of the grader.

Part 1 proves what the sandbox promises: memory bounded per submission (processes and tmpfs
together), a classmate not slowed by a CPU hog graded beside them, the grader's own memory
bounded by its frame cap, cgroups removed after every grade, the isolation layers reported (and
no grade at all without bubblewrap). Part 2 attacks, as a cheating student, the retry path, the
per-grade seed, the public-answers rule, the own-forward fallback, time-out attribution and the
seccomp filter. Every test asserts the HONEST outcome (the holes they found are closed).
Everything runs under small Limits and cleans up after itself.
"""
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import source.image_captioning.captioning.rnn_layers as reference_layers
from autograder import sandbox
from autograder.front.batch import run_batch
from autograder.results import GradingOptions
from autograder.sandbox import GiB, Limits, MiB, OutOfMemory
from tests import hostile
from tests.hostile import CORRECT_STEP, KEY, ROOT, clear_user_keyring, key_users, make, mine, throwaway_processes, total

LIMITS = Limits(check_seconds=2, import_seconds=5, train_seconds=10, memory_bytes=1 * GiB,
                submission_memory=1 * GiB, processes=32, submission_seconds=30, output_bytes=16 * 1024)
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="uid isolation needs the grader to run as root")
CGROUPS = pytest.mark.skipif(sandbox.cgroup_v1_base("memory") is None, reason="no v1 cgroups on this machine")
PYTHON = sys.executable


def graded(tmp_path, name, units, limits=LIMITS, **code):
    return hostile.graded(tmp_path, name, units, limits, **code)


def scores(results):
    by_unit = {}
    for r in results:
        by_unit[r.unit] = by_unit.get(r.unit, 0.0) + r.score
    return by_unit


def remove_cgroups(folders):
    """Clean up what a failing test found left behind (empty cgroup folders), quietly."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            pass


def my_cgroups(pid=None):
    """The captioning-grader-<pid>-* cgroup folders of this process (or of pid)."""
    return sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/captioning-grader-%d-*" % (pid or os.getpid())))


@pytest.fixture
def no_leftovers():
    """After the test: no process of a throwaway uid of ours, no cgroup of ours; removes (and
    reports) any that are left."""
    yield
    for _ in range(50):
        if not throwaway_processes():
            break
        time.sleep(0.1)
    left, cgroups = throwaway_processes(), my_cgroups()
    for pid in left:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    remove_cgroups(cgroups)
    assert not left, "processes left behind: %s" % left
    assert not cgroups, "cgroups left behind: %s" % cgroups


# ============================================================================ PART 1: promises

# (a) memory is bounded per submission, processes and tmpfs together

FOUR_HOGS = '''
import os as _os, time as _time

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    children = []
    for _ in range(4):
        pid = _os.fork()
        if pid == 0:
            try:
                hog = np.ones(400 * 2**20 // 8)          # 400 MB, every page touched
                _time.sleep(1.5)
                _os._exit(0 if hog[-1] == 1 else 3)
            except BaseException:
                _os._exit(2)
        children.append(pid)
    codes = [_os.waitstatus_to_exitcode(_os.waitpid(p, 0)[1]) for p in children]
    if codes != [0, 0, 0, 0]:
        raise RuntimeError("hogs=%s" % codes)
    return np.tanh(x @ Wx + prev_h @ Wh + b), (x, prev_h, Wx, Wh)
'''


@pytest.mark.slow
@ROOT_ONLY
@CGROUPS
def test_four_processes_of_400_mb_share_one_gigabyte(tmp_path, no_leftovers):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # 30 s: on a loaded machine, four processes filling 1 GiB took over 8 before the kernel killed one
    limits = Limits(**dict(LIMITS.__dict__, check_seconds=30, memory_bytes=1 * GiB, submission_memory=1 * GiB))
    results = graded(tmp_path, "four-hogs", ["rnn_step_forward"], limits=limits, override=FOUR_HOGS)
    assert total(results) == 0, [r.output for r in results]
    first = results[0].output
    # killed by the cgroup's OOM killer (a hog, -9), or the child itself was (a crash, SIGKILL)
    assert "-9" in first or "SIGKILL" in first, first
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 100 * 1024, "the grader grew by %d MB" % (grown >> 10)


@ROOT_ONLY
@CGROUPS
def test_a_submission_that_hoards_memory_at_import_is_charged_for_it(tmp_path, no_leftovers):
    """512 MB allocated when rnn_layers is imported, 256 MB for the submission: its children are
    killed twice before any function runs, the reference package imports in its place, so the
    submission is at fault: its checks say why, the grade goes on."""
    limits = Limits(**dict(LIMITS.__dict__, memory_bytes=2 * GiB, submission_memory=256 * MiB))
    prelude = "import numpy\n_hoard = [numpy.ones(1 << 20) for _ in range(64)]  # every page touched\n"
    results = graded(tmp_path, "hoard", ["rnn_step_forward"], limits=limits, prelude=prelude)
    assert total(results) == 0 and results, [r.output for r in results]
    for r in results:
        assert ("killed (SIGKILL) twice while importing your package, where the reference package imports: most "
                "likely out of memory, more than this grading machine can give it (256 MB in all); load data inside "
                "your functions") in r.output, r.output


@ROOT_ONLY
@CGROUPS
def test_a_machine_too_small_for_the_reference_too_grades_nothing(tmp_path, no_leftovers):
    """8 MB for the submission: the answer key's children are killed importing it, and so is the
    reference package in its place: the machine's fault (no grade), never the student's."""
    limits = Limits(**dict(LIMITS.__dict__, submission_memory=8 * MiB))
    with pytest.raises(OutOfMemory, match="and once more importing the reference package in its place"):
        graded(tmp_path, "key", ["rnn_step_forward"], limits=limits)


FILL_TMPFS = '''
import errno as _errno, os as _os

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    chunk, written, error = b"x" * (32 * 2**20), 0, None
    for n in range(%(files)d):
        try:
            with open("%(folder)s/fill-%%d" %% n, "wb") as f:
                f.write(chunk)
            written += len(chunk)
        except OSError as exc:
            error = _errno.errorcode.get(exc.errno, exc.errno)
            break
    if written > %(enough)d:
        return np.tanh(x @ Wx + prev_h @ Wh + b), (x, prev_h, Wx, Wh)
    raise RuntimeError("written=%%d MB error=%%s" %% (written >> 20, error))
'''


def test_filling_tmp_past_its_size_fails_with_enospc(tmp_path, no_leftovers):
    limits = Limits(**dict(LIMITS.__dict__, tmpfs_bytes=64 * MiB, check_seconds=6))
    code = FILL_TMPFS % dict(folder="/tmp", files=4, enough=64 * MiB)
    results = graded(tmp_path, "fill-tmp", ["rnn_step_forward"], limits=limits, override=code)
    assert total(results) == 0, [r.output for r in results]
    assert "error=ENOSPC" in results[0].output and "written=64 MB" in results[0].output, results[0].output


@ROOT_ONLY
@CGROUPS
def test_dev_shm_counts_against_the_submission_memory(tmp_path, no_leftovers):
    """/dev/shm allowed 2 GB, the submission 512 MB: the tmpfs pages are the submission's memory."""
    limits = Limits(**dict(LIMITS.__dict__, tmpfs_bytes=2 * GiB, submission_memory=512 * MiB, check_seconds=8))
    code = FILL_TMPFS % dict(folder="/dev/shm", files=40, enough=640 * MiB)
    results = graded(tmp_path, "fill-shm", ["rnn_step_forward"], limits=limits, override=code)
    assert total(results) == 0, [r.output for r in results]
    first = results[0].output
    assert re.search(r"written=\d+ MB error=(ENOSPC|ENOMEM)", first) or "SIGKILL" in first \
        or "exited with code 137" in first, first   # OOM-killed: bubblewrap reports 128 + SIGKILL


# (b) a classmate is not slowed by a CPU hog graded at the same time

CPU_HOG = '''
import os as _os, time as _time
_stop = _time.monotonic() + 10
for _ in range(30):
    try:
        if _os.fork() == 0:
            while _time.monotonic() < _stop:
                pass
            _os._exit(0)
    except OSError:
        break
'''
HOG_STEP = "\ndef rnn_step_forward(*args):\n    while True:\n        pass\n"


@pytest.mark.slow
@ROOT_ONLY
@CGROUPS
def test_a_cpu_hog_does_not_slow_a_classmate(tmp_path, no_leftovers):
    subs = tmp_path / "subs"
    make(subs, "a-hog", prelude=CPU_HOG, override=HOG_STEP)
    make(subs, "b-honest")
    limits = Limits(**dict(LIMITS.__dict__, processes=64))
    documents = run_batch(subs, tmp_path / "out", GradingOptions(units=["rnn_step_forward"], limits=limits), workers=2,
                          progress=False)
    assert documents["b-honest"].total == pytest.approx(5), documents["b-honest"]
    assert documents["a-hog"].total == 0, documents["a-hog"]
    assert not throwaway_processes()  # the hog's 30 processes died with its grade


# (c) the grader's memory stays bounded by its frame cap

MAX_FRAME = '''
import json as _json, os as _os, sys as _sys

def rnn_step_forward(*args):
    f = _sys._getframe()
    while "check_id" not in f.f_locals:
        f = f.f_back
    n = (%d - 64) // 8
    header = {"id": f.f_locals["check_id"], "tree": {"d": {"next_h": {"a": ["<f8", [n]]}}}, "size": n * 8}
    data = memoryview((_json.dumps(header) + "\\n").encode() + bytes(n * 8))
    while data:
        data = data[_os.write(int(_sys.argv[1]), data):]
    _os._exit(0)
'''
MEASURE = '''
import json, os, resource, sys
from autograder.grade import grade
from autograder.reference import all_checks, reference_impl
from autograder.results import GradingOptions
from autograder.sandbox import Limits, GiB
limits = Limits(**json.loads(sys.argv[2]))
all_checks(); reference_impl()
grade(sys.argv[3], GradingOptions(units=["rnn_step_forward"], limits=limits, jobs=1))   # warm up: every cache filled
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
results = grade(sys.argv[1], GradingOptions(units=["rnn_step_forward"], limits=limits, jobs=1))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print("GROWN_KB=%d SCORE=%s PID=%d" % (grown, sum(r.score for r in results), os.getpid()))
'''


def test_a_maximal_frame_costs_the_grader_a_bounded_amount(tmp_path, no_leftovers):
    payload = 32 * MiB
    settings = dict(check_seconds=4, import_seconds=5, memory_bytes=1 * GiB, submission_memory=1 * GiB,
                    processes=32, submission_seconds=40, max_payload=payload)
    big = make(tmp_path, "max-frame", override=MAX_FRAME % payload)
    honest = make(tmp_path, "honest")
    probe = subprocess.run([PYTHON, "-c", MEASURE, str(big), json.dumps(settings), str(honest)],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    found = re.search(r"GROWN_KB=(\d+) SCORE=(\S+) PID=(\d+)", probe.stdout)
    assert found, probe.stdout + probe.stderr
    grown_kb, score = int(found.group(1)), float(found.group(2))
    left = my_cgroups(int(found.group(3)))
    remove_cgroups(left)
    assert not left, "cgroups left behind by the grading process: %s" % left
    assert score == 0
    # three checks, each answered with a 32 MB frame: a few copies of one frame at most, none kept
    assert grown_kb < 5 * payload // 1024, "the grader grew by %d MB" % (grown_kb >> 10)


# (d) cgroups are removed after a grade, whatever the submission did

@ROOT_ONLY
@CGROUPS
@pytest.mark.parametrize("name,code", [
    ("honest", dict(override=CORRECT_STEP)),
    ("hang", dict(override=HOG_STEP)),
    ("forks", dict(override='\nimport os\ndef rnn_step_forward(*args):\n    for _ in range(40):\n'
                            '        try:\n            os.fork() or __import__("time").sleep(30)\n'
                            '        except OSError:\n            pass\n    raise RuntimeError("forked")\n')),
    ("oom", dict(override="\ndef rnn_step_forward(*args):\n    a = [np.ones(2**27) for _ in range(20)]\n")),
])
def test_cgroups_are_removed_after_a_grade(tmp_path, no_leftovers, name, code):
    assert not my_cgroups(), "cgroups of this process before grading: %s" % my_cgroups()
    graded(tmp_path, name, ["rnn_step_forward"], **code)
    assert not my_cgroups()


# (e) the isolation layers are reported; no bubblewrap, no grade

CLI = '''
import dataclasses, sys
import autograder.front.cli as cli
grade = cli.grade
cli.grade = lambda sub, options: grade(sub, dataclasses.replace(options, units=("rnn_step_forward",)))  # light
sys.exit(cli.main(sys.argv[1:]))
'''


@ROOT_ONLY
@CGROUPS
def test_cli_names_the_isolation_layers(tmp_path, no_leftovers):
    folder = make(tmp_path, "cli")
    out = tmp_path / "results.json"
    run = subprocess.run([PYTHON, "-c", CLI, str(folder), "--results", str(out)], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("isolation:")]
    assert len(lines) == 1, run.stderr
    assert "bubblewrap" in lines[0] and "cgroup per submission" in lines[0], lines[0]
    assert json.loads(out.read_text())["score"] == pytest.approx(5)


def test_cli_without_bubblewrap_grades_nothing(tmp_path):
    folder = make(tmp_path, "no-bwrap")
    out = tmp_path / "results.json"
    env = dict(os.environ, PATH=str(Path(PYTHON).parent))
    assert subprocess.run(["/bin/sh", "-c", "command -v bwrap"], env=env, capture_output=True).returncode != 0
    run = subprocess.run([PYTHON, "-m", "autograder", str(folder), "--results", str(out)], capture_output=True,
                         text=True, timeout=60, cwd=ROOT, env=env)
    assert run.returncode == 3, (run.returncode, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cannot grade: bubblewrap is not installed"), run.stderr
    assert not out.exists()


# ============================================================================ PART 2: attacks

# The retry path: a unit that raises NotImplementedError in a retry has that message shown when
# it has the exact file-and-line form. The line number is the student's to choose: with the
# oracle at hand, it carries ~20 bits of a reference output per check out to the student.

LINE_LEAK = '''
import sys as _sys

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    return np.zeros_like(prev_h), None          # sacrificed, so that the retry of rnn_forward brings the oracle

def rnn_forward(x, h0, Wx, Wh, b):
    step = globals()["rnn_step_forward"]
    if not step.__code__.co_filename.startswith("/grader"):
        raise ValueError("first pass")
    rng = np.random.RandomState(5)
    out = step(rng.randn(2, 3), rng.randn(2, 4), rng.randn(3, 4), rng.randn(4, 4), rng.randn(4))
    line = int(round((out[0].flat[0] + 1) * 400000)) + 1          # the reference's answer, to 1e-5
    exec(compile("\\n" * (line - 2) + "def rnn_forward():\\n    raise NotImplementedError\\n",
                 __file__, "exec"), globals())
    return globals()["rnn_forward"]()
'''


def test_retry_line_numbers_carry_no_oracle_output(tmp_path, no_leftovers):
    results = graded(tmp_path, "line-leak", ["rnn_forward"], override=LINE_LEAK)
    rng = np.random.RandomState(5)
    args = rng.randn(2, 3), rng.randn(2, 4), rng.randn(3, 4), rng.randn(4, 4), rng.randn(4)
    value = reference_layers.rnn_step_forward(*args)[0].flat[0]
    secret = int(round((value + 1) * 400000))
    shown = " ".join(r.output for r in results)
    assert total(results) == 0
    assert "line %d," % (secret + 1) not in shown, shown   # the raise sits one line below the def


# The per-grade seed of the training check is in the child's request: the child knows it, but it
# only says which captions the model trains on (the solver hands the model those anyway).

SEED_SPY = '''

import sys as _sys

def _loss(self, features, captions):
    f = _sys._getframe()
    while f is not None and "request" not in f.f_locals:
        f = f.f_back
    raise ValueError("seed=%d" % f.f_locals["request"]["seed"])

CaptioningRNN.loss = _loss
'''


def test_the_training_seed_is_fresh_for_every_grade(tmp_path, no_leftovers):
    extra = {"captioning/classifiers/rnn.py": ((KEY / "classifiers" / "rnn.py").read_text() + SEED_SPY).encode()}
    seeds = []
    for n in range(2):
        results = graded(tmp_path, "seed-%d" % n, ["overfit (rnn)"], extra=extra)
        assert total(results) == 0
        seeds += [int(s) for r in results for s in re.findall(r"seed=(\d+)", r.output)]
    assert len(set(seeds)) == 2 and 231 not in seeds, seeds


# The own-forward fallback: a backward unit is checked against numerical gradients of the
# student's own forward when that forward "ran". A forward that depends on one input only (b)
# makes the "gradient" a one-liner: dx, dprev_h, dWx, dWh are zeros, db sums dnext_h.

DEGENERATE = '''
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    return np.zeros_like(prev_h) + b, None                  # depends on b alone

def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh = cache[:4] if cache is not None else (None,) * 4
    shapes = [a.shape if a is not None else None for a in (x, prev_h, Wx, Wh)]
    if None in shapes:
        raise ValueError("no cache")
    return (np.zeros(shapes[0]), np.zeros(shapes[1]), np.zeros(shapes[2]), np.zeros(shapes[3]),
            dnext_h.sum(axis=0))
'''
DEGENERATE_CACHE = DEGENERATE.replace("return np.zeros_like(prev_h) + b, None",
                                      "return np.zeros_like(prev_h) + b, (x, prev_h, Wx, Wh)")


def test_a_degenerate_forward_earns_no_backward_points(tmp_path, no_leftovers):
    results = graded(tmp_path, "degenerate", ["rnn_step_forward", "rnn_step_backward"], override=DEGENERATE_CACHE)
    assert scores(results)["rnn_step_forward"] == 0
    assert scores(results)["rnn_step_backward"] == 0, [r.output for r in results]


# Time-out attribution: a buggy rnn_forward that loops for ever, calling a correct rnn_step_forward.
# The watchdog blames the innermost unit function on the stack: most of the time, the step.

LOOPING_FORWARD = CORRECT_STEP + '''
def rnn_forward(x, h0, Wx, Wh, b):
    h = h0
    while True:                                   # the bug: never stops
        h, _ = rnn_step_forward(x[:, 0, :], h, Wx, Wh, b)
'''


def test_a_loop_over_a_dependency_blames_the_caller(tmp_path, no_leftovers):
    results = graded(tmp_path, "loop-calls-step", ["rnn_step_forward", "rnn_forward"], override=LOOPING_FORWARD)
    by_unit = scores(results)
    assert by_unit["rnn_forward"] == 0
    assert by_unit["rnn_step_forward"] == pytest.approx(5), [r.output for r in results if r.unit == "rnn_step_forward"]


# The seccomp filter denies the keyring syscalls by number for x86_64 and aarch64 only, and lets
# every other architecture through: the i386 ABI (int 0x80) reaches add_key.

I386_ADD_KEY = '''
import ctypes as _ct, mmap as _mmap, struct as _struct

def _int80(number, *args):
    """The i386 system call `number` with up to 5 arguments (32-bit values), via int 0x80."""
    page = _mmap.mmap(-1, 4096, flags=_mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS | 0x40,   # MAP_32BIT
                      prot=_mmap.PROT_READ | _mmap.PROT_WRITE | _mmap.PROT_EXEC)
    args = list(args) + [0] * (5 - len(args))
    code = b"\\x53" + b"\\xb8" + _struct.pack("<I", number)                     # push rbx; mov eax
    for opcode, value in zip((b"\\xbb", b"\\xb9", b"\\xba", b"\\xbe", b"\\xbf"), args):   # ebx ecx edx esi edi
        code += opcode + _struct.pack("<I", value & 0xFFFFFFFF)
    code += b"\\xcd\\x80\\x5b\\xc3"                                                  # int 0x80; pop rbx; ret
    page.write(code)
    address = _ct.addressof(_ct.c_char.from_buffer(page))
    result = _ct.CFUNCTYPE(_ct.c_int)(address)()
    _PAGES.append(page)
    return result

_PAGES = []
_data = _mmap.mmap(-1, 8192, flags=_mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS | 0x40)
_data.write(b"user\\0left-behind-i386\\0" + b"x" * 4000)
_base = _ct.addressof(_ct.c_char.from_buffer(_data))
_KEY = _int80(286, _base, _base + 5, _base + 22, 4000, -4)    # add_key("user", ..., @u)
if _KEY > 0:
    _int80(288, 15, _KEY, 3)                                 # keyctl(KEYCTL_SET_TIMEOUT, key, 3 s)

def rnn_step_forward(*args):
    raise RuntimeError("i386 add_key=%d" % _KEY)
'''


@ROOT_ONLY
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the i386 ABI exists on x86_64 only")
def test_keyring_through_the_i386_abi_is_denied(tmp_path, no_leftovers):
    if not Path("/proc/key-users").exists():
        pytest.skip("no /proc/key-users")
    before = key_users()
    try:
        results = graded(tmp_path, "i386-keyring", ["rnn_step_forward"], override=I386_ADD_KEY)
        left = {uid: n for uid, n in key_users().items() if mine(uid) and n > before.get(uid, 0) and n >= 4000}
        found = re.search(r"i386 add_key=(-?\d+)", results[0].output)
        assert found, results[0].output
        assert int(found.group(1)) < 0 and not left, (results[0].output, left)
    finally:
        for uid in key_users():
            if mine(uid) and uid not in before:
                clear_user_keyring(uid)
