"""Run checks on an untrusted submission in child processes with time, memory and process limits.

A hang, crash or os._exit in the child costs the check it was running: the child is killed
and a fresh one carries on with the remaining checks.

When the grader runs as root, every child runs as its own throwaway uid (THROWAWAY_UID_BASE + ...,
not in /etc/passwd) and group (one per graded submission, owning its scratch folder only), so:
RLIMIT_NPROC counts that child's processes alone; killing the child kills every process of its
uid, wherever setsid/double forks put them; and a submission cannot touch another's scratch
folder during a batch. The child also gets private mount and network namespaces in which the
grader's own folders (the repository holding autograder/, source/, solutions/, .git, ...) are
covered by empty read-only tmpfs mounts. Without root only the process-group kill and rlimits apply.
All children of one grade share a wall-clock budget, Limits.submission_seconds.
"""
import io
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CHILD_SOURCE = (Path(__file__).parent / "child.py").read_text()
GiB = 1 << 30
MAX_HEADER = 1 << 20
GRADER_ROOT = Path(__file__).resolve().parent.parent
THROWAWAY_UID_BASE = 1 << 24       # uids/gids BASE + (pid mod 2^15) * 2^16 + n: unused by any account
_grades, _grades_lock, _counter = {}, threading.RLock(), [0]


def _throwaway_id():
    """A uid/gid no other live child uses: unique per grader process (pid) and per call."""
    with _grades_lock:
        _counter[0] += 1
        return THROWAWAY_UID_BASE + (os.getpid() % (1 << 15) << 16) + _counter[0] % (1 << 16)


def grade_state(scratch, limits):
    """Per-graded-submission state, keyed by its scratch folder: deadline and group id.

    The first run_checks call for a scratch folder starts the submission's wall-clock budget and,
    as root, gives the folder to a fresh group that only this submission's children belong to.
    """
    key = str(scratch)
    with _grades_lock:  # held throughout: the children of one grade start in parallel threads
        for old in [k for k in _grades if not os.path.isdir(k)]:
            del _grades[old]  # that grade is over: its scratch folder has been removed
        if key not in _grades:
            state = {"deadline": time.monotonic() + limits.submission_seconds, "gid": None}
            if os.geteuid() == 0:
                state["gid"] = _throwaway_id()
                for path in [Path(scratch), *Path(scratch).rglob("*")]:
                    os.chown(path, 0, state["gid"], follow_symlinks=False)
                    if not path.is_symlink():
                        path.chmod(0o2770 if path.is_dir() else 0o660)
            _grades[key] = state
        return _grades[key]


def hidden_folders(scratch):
    """Folders of the grader's tree to cover in the child: all of GRADER_ROOT's except the ones
    holding the interpreter/venv or the scratch folder."""
    keep = [Path(p).resolve() for p in (sys.prefix, sys.executable, scratch)]
    return [str(p) for p in sorted(GRADER_ROOT.iterdir())
            if p.is_dir() and not p.is_symlink() and not any(k == p or p in k.parents for k in keep)]


def live_pids(uid):
    """Pids of the non-zombie processes whose real uid is uid."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path("/proc", entry, "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == [str(uid)] and not fields.get("State", "").strip().startswith("Z"):
            pids.append(int(entry))
    return pids


def kill_uid(uid, attempts=100):
    """SIGKILL every process of uid (root only): a helper drops to uid and calls kill(-1).

    Repeated until none is left, so a fork bomb racing the kill cannot win. True when none is left.
    """
    for _ in range(attempts):
        pid = os.fork()
        if pid == 0:
            try:
                os.setgroups([])
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        if not live_pids(uid):
            return True
        time.sleep(0.01)
    return False


@dataclass
class Limits:
    check_seconds: float = 30.0       # per check (training checks get train_seconds)
    train_seconds: float = 180.0
    import_seconds: float = 30.0
    memory_bytes: int = 4 * GiB       # address space of the child
    processes: int = 64               # RLIMIT_NPROC, enforced for the unprivileged user
    output_bytes: int = 64 * 1024     # captured stdout/stderr kept per child
    file_bytes: int = 64 << 20        # largest file the child may write
    submission_seconds: float = 900.0  # wall clock for all children of one grade together

    def child_settings(self):
        rlimits = {"RLIMIT_AS": self.memory_bytes, "RLIMIT_NPROC": self.processes,
                   "RLIMIT_FSIZE": self.file_bytes, "RLIMIT_CORE": 0}
        return {"rlimits": rlimits, "isolate_network": os.geteuid() == 0}


@dataclass
class ChildResult:
    """What the child reported for one check: outputs, or an error line, plus warnings."""
    outputs: dict = None
    error: str = None
    warnings: list = field(default_factory=list)
    seconds: float = 0.0


def child_env():
    """A minimal environment: one BLAS thread per child, no inherited secrets."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp", "MPLBACKEND": "Agg"}
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            env[var] = os.environ[var]
    return env


class Child:
    """One sandboxed child process and the reading of its result frames."""

    def __init__(self, request, limits, gid=None):
        self.limits, self.uid = limits, None
        if os.geteuid() == 0:
            self.uid = _throwaway_id()
            request = dict(request, limits=dict(request["limits"], uid=self.uid, gid=gid,
                                                hide=hidden_folders(request["scratch"])))
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", CHILD_SOURCE, str(write_fd)], pass_fds=(write_fd,),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=request["scratch"], env=child_env(), start_new_session=True)
        os.close(write_fd)
        self.fd, self.buffer, self.output = read_fd, bytearray(), bytearray()
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def _drain(self):
        """Keep the first output_bytes of the child's stdout/stderr, discard the rest."""
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            room = self.limits.output_bytes - len(self.output)
            if room > 0:
                self.output += chunk[:room]

    def _fill(self, deadline):
        """Read what the child has sent so far, waiting until deadline at most."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            raise EOFError
        self.buffer += chunk

    def next_frame(self, seconds):
        """(header, arrays) of the next frame; TimeoutError or EOFError when there is none."""
        deadline = time.monotonic() + seconds
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_HEADER:
                raise EOFError
            self._fill(deadline)
        line, _, rest = bytes(self.buffer).partition(b"\n")
        header = json.loads(line)
        size = header.get("size", 0) if isinstance(header, dict) else -1
        if not isinstance(size, int) or size < 0:
            raise EOFError
        self.buffer = bytearray(rest)
        while len(self.buffer) < size:
            self._fill(deadline)
        payload, self.buffer = bytes(self.buffer[:size]), self.buffer[size:]
        arrays = None
        if payload:
            with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        return header, arrays

    def exit_reason(self):
        """How the child ended, once it has: 'exited with code N' or 'was killed by SIGX'."""
        code = self.proc.wait()
        if code < 0:
            return "was killed by %s" % signal.Signals(-code).name
        return "exited with code %d" % code

    def kill(self):
        """Kill the child, its process group and (as root) every process of its uid; reap it.

        Safe to call twice."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.kill()
        self.proc.wait()
        if self.uid is not None:
            kill_uid(self.uid)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.drain.join(timeout=1)
        if not self.drain.is_alive():
            self.proc.stdout.close()


def run_checks(scratch, check_ids, timeouts, sources, limits, swaps=()):
    """Run check ids on the package in scratch: {id: ChildResult}, one entry for every id."""
    results, pending = {}, list(check_ids)
    state = grade_state(scratch, limits)
    over_budget = "time limit: grading your whole submission took longer than %g s" % limits.submission_seconds
    while pending:
        if time.monotonic() >= state["deadline"]:
            results.update({i: ChildResult(error=over_budget) for i in pending})
            break
        request = {"scratch": str(scratch), "checks": pending, "swaps": list(swaps),
                   "sources": sources, "limits": limits.child_settings()}
        child = Child(request, limits, state["gid"])
        try:
            error = import_error(child, limits, state["deadline"], over_budget)
            if error:
                results.update({i: ChildResult(error=error) for i in pending})
                break
            while pending:
                started = time.monotonic()
                budget = state["deadline"] - started
                try:
                    header, arrays = child.next_frame(min(timeouts[pending[0]], budget))
                except TimeoutError:
                    error = ("time limit: this check took longer than %g s" % timeouts[pending[0]]
                             if budget > timeouts[pending[0]] else over_budget)
                except (EOFError, ValueError, OSError):
                    error = child_failure(child, "during this check")
                else:
                    if header.get("id") != pending[0]:
                        error = "the grading process sent an unexpected answer"
                if error:
                    results[pending.pop(0)] = ChildResult(error=error)
                    break
                results[pending.pop(0)] = ChildResult(arrays, header.get("error"), list(header.get("warnings", []))[:5],
                                                      time.monotonic() - started)
        finally:
            child.kill()
    return results


def import_error(child, limits, deadline=float("inf"), over_budget=""):
    """None once the child has imported the submission, else why it could not."""
    budget = deadline - time.monotonic()
    try:
        header, _ = child.next_frame(min(limits.import_seconds, budget))
    except TimeoutError:
        if budget <= limits.import_seconds:
            return over_budget
        return "time limit: importing your package took longer than %g s" % limits.import_seconds
    except (EOFError, ValueError, OSError):
        return child_failure(child, "while importing your package")
    return None if header.get("ready") else str(header.get("error", "could not import your package"))


def child_failure(child, when):
    """One line on why the child stopped answering, with the tail of its output."""
    try:
        child.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    child.kill()
    reason = "the grading process %s %s" % (child.exit_reason(), when)
    if child.proc.returncode == -signal.SIGKILL:
        reason += " (out of memory or a resource limit)"
    tail = bytes(child.output[-300:]).decode("utf-8", "replace").strip().replace("\n", " | ")
    return reason + (": " + tail if tail else "")
