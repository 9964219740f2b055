"""Build submissions for the hostile corpus: the answer key with code added or replaced.

make(root, name, prelude=..., override=...) writes root/name/captioning/{rnn_layers.py,
classifiers/rnn.py} and the answer key's Transformer files: `prelude` runs when rnn_layers is
imported, `override` is appended to rnn_layers.py (so it replaces rnn_step_forward, the unit the
hostile tests grade). Also the helpers the grading tests share: zip_folder, lost_units.
"""
import ctypes
import os
import shutil
import signal
import subprocess
import textwrap
import time
import zipfile
from pathlib import Path

from autograder import sandbox
from autograder.course import REFERENCE_PACKAGE
from autograder.intake import STUDENT_FILES
from autograder.results import GradingOptions

ROOT = Path(__file__).resolve().parents[2]
KEY = REFERENCE_PACKAGE

CORRECT_STEP = ("\n\ndef rnn_step_forward(x, prev_h, Wx, Wh, b):\n    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)\n"
                "    return next_h, (x, prev_h, Wx, Wh, next_h)\n")
BUGGY_STEP = ("\n\ndef rnn_step_forward(x, prev_h, Wx, Wh, b):\n    next_h = np.tanh(x @ Wx + prev_h @ Wh)\n"
              "    return next_h, (x, prev_h, Wx, Wh, next_h)\n")


def make(root, name, prelude="", override="", raw=None, extra=None):
    """A submission folder; raw replaces rnn_layers.py with these bytes; extra = {relpath: bytes}."""
    folder = Path(root) / name
    package = folder / "captioning"
    (package / "classifiers").mkdir(parents=True)
    for rel in STUDENT_FILES:
        if rel != "rnn_layers.py":
            shutil.copyfile(KEY / rel, package / rel)
    if raw is not None:
        (package / "rnn_layers.py").write_bytes(raw)
    else:
        text = (KEY / "rnn_layers.py").read_text()
        (package / "rnn_layers.py").write_text(textwrap.dedent(prelude) + "\n" + text + textwrap.dedent(override))
    for rel, data in (extra or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


# What a container's grade must survive: a fork flood, a memory bomb past 768 MB, endless loops in
# two units, a real-time signal (no name in Python's signal module): each costs exactly its unit.
CONTAINER_HOSTILE = """
def rnn_step_forward(*args):
    import os, time
    for _ in range(200):  # bounded even if the process limit failed; each child lingers
        if os.fork() == 0:
            os.setsid()
            time.sleep(60)
            os._exit(0)

def rnn_backward(*args):
    hoard = []
    while len(hoard) < 400:  # 3.2 GB at most, far past the container's 768 MB
        hoard.append(np.ones(1 << 20))

def lstm_step_forward(*args):
    while True:
        pass

def word_embedding_forward(*args):
    import os
    os.kill(os.getpid(), 40)
"""
ATTENTION_LOOP = "\n\ndef multihead_attention_forward(*args, **kwargs):\n    while True:\n        pass\n"
CONTAINER_HOSTILE_UNITS = {"rnn_step_forward", "rnn_backward", "lstm_step_forward", "word_embedding_forward",
                           "multihead_attention_forward"}


def container_hostile(root):
    """The submission of CONTAINER_HOSTILE (the attention loop in transformer_layers.py)."""
    folder = make(root, "hostile", override=CONTAINER_HOSTILE)
    layers = folder / "captioning" / "transformer_layers.py"
    layers.write_text(layers.read_text() + ATTENTION_LOOP)
    return folder


def zip_folder(folder, archive, top=None):
    """archive: every file under folder, at the root of the zip or under `top/`."""
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                rel = path.relative_to(folder).as_posix()
                z.write(path, "%s/%s" % (top, rel) if top else rel)
    return archive


def lost_units(results):
    """The units a grade (GradingResults) does not give full points."""
    return {u for u, (got, top) in results.by_unit().items() if got < top - 1e-9}


def mine(uid):
    """Whether uid is a throwaway sandbox uid handed out by this (grading) process: other graders
    on the machine hand out theirs from their own pid."""
    return uid >= sandbox.THROWAWAY_UID_BASE and (uid - sandbox.THROWAWAY_UID_BASE) >> 16 == os.getpid() % (1 << 15)


processes = sandbox.processes  # live pids whose real uid satisfies match(uid)


def throwaway_processes():
    return processes(mine)


def key_users():
    """{uid: bytes held in keys} of /proc/key-users."""
    users = {}
    for line in Path("/proc/key-users").read_text().splitlines():
        uid, rest = line.split(":", 1)
        users[int(uid)] = int(rest.split()[3].split("/")[0])
    return users


def clear_user_keyring(uid):
    """Empty uid's user keyring (as root: a forked process takes the uid)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            ctypes.CDLL(None).syscall(250, 7, ctypes.c_long(-4))  # KEYCTL_CLEAR @u
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def graded(tmp_path, name, units, limits, **code):
    """Grade a hostile submission built by make(); every result must carry a reason."""
    from autograder.grade import grade
    results = grade(make(tmp_path, name, **code), GradingOptions(units=units, limits=limits, jobs=1))
    assert results
    for r in results:
        assert r.output.startswith(("PASS: ", "FAIL: ")) and len(r.output) > len("FAIL: "), r.output
    return results


def total(results):
    return sum(r.score for r in results)


def kill_batch_once_written(command, out, pattern, seconds, env=None):
    """Start a batch run (its own process group), SIGKILL the whole group as soon as a results.json
    matching out/pattern exists (or after seconds), and reap it."""
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not list(out.glob(pattern)):
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
