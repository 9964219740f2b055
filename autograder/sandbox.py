"""Run checks on an untrusted submission in child processes with time, memory and process limits.

A hang, crash or os._exit in the child costs the check it was running: the child is killed
(its whole process group) and a fresh one carries on with the remaining checks.
"""
import io
import json
import os
import pwd
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


@dataclass
class Limits:
    check_seconds: float = 30.0       # per check (training checks get train_seconds)
    train_seconds: float = 180.0
    import_seconds: float = 30.0
    memory_bytes: int = 4 * GiB       # address space of the child
    processes: int = 64               # RLIMIT_NPROC, enforced for the unprivileged user
    output_bytes: int = 64 * 1024     # captured stdout/stderr kept per child
    file_bytes: int = 64 << 20        # largest file the child may write
    user: str = "nobody"              # who runs student code when the grader is root

    def child_settings(self):
        rlimits = {"RLIMIT_AS": self.memory_bytes, "RLIMIT_NPROC": self.processes,
                   "RLIMIT_FSIZE": self.file_bytes, "RLIMIT_CORE": 0}
        settings = {"rlimits": rlimits, "isolate_network": os.geteuid() == 0, "uid": None, "gid": None}
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.user)
            settings.update(uid=entry.pw_uid, gid=entry.pw_gid)
        return settings


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

    def __init__(self, request, limits):
        self.limits = limits
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", CHILD_SOURCE, str(write_fd)], pass_fds=(write_fd,),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=request["scratch"], env=child_env(), start_new_session=True)
        os.close(write_fd)
        self.fd, self.buffer, self.output = read_fd, bytearray(), bytearray()
        threading.Thread(target=self._drain, daemon=True).start()
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
        """Kill the child's whole process group and reap it (safe to call twice)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.kill()
        self.proc.wait()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def run_checks(scratch, check_ids, timeouts, sources, limits, swaps=()):
    """Run check ids on the package in scratch: {id: ChildResult}, one entry for every id."""
    results, pending = {}, list(check_ids)
    while pending:
        request = {"scratch": str(scratch), "checks": pending, "swaps": list(swaps),
                   "sources": sources, "limits": limits.child_settings()}
        child = Child(request, limits)
        try:
            error = import_error(child, limits)
            if error:
                results.update({i: ChildResult(error=error) for i in pending})
                break
            while pending:
                started = time.monotonic()
                try:
                    header, arrays = child.next_frame(timeouts[pending[0]])
                except TimeoutError:
                    error = "time limit: this check took longer than %g s" % timeouts[pending[0]]
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


def import_error(child, limits):
    """None once the child has imported the submission, else why it could not."""
    try:
        header, _ = child.next_frame(limits.import_seconds)
    except TimeoutError:
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
