"""Run an untrusted submission's checks in sandboxed processes and collect what they report.

Every process that runs student code (inside/child.py), and the oracle serving reference
functions to it (inside/oracle.py), runs under bubblewrap in a fresh root made of read-only binds
of the interpreter and its libraries, the sandbox's own code (/grader) and, for the child only, the
submission's staged copy (/submission); private /tmp and /dev/shm tmpfs with size caps; new PID,
IPC, network, UTS and mount namespaces with their own /proc; no capabilities but the two needed
to drop to a throwaway uid; dying with the grader. As root, each process runs as its own
throwaway uid (not in /etc/passwd); rlimits bound each process, and where the machine allows it a
cgroup per graded submission bounds them all together (memory incl. tmpfs, process count, an equal
CPU share). `isolation_layers()` names what is active; `preflight()` starts one trivial sandboxed
child and raises SandboxError when that fails, so a broken sandbox never produces a grade.

A hang, crash or exit costs the check that was running: the child is killed (its whole PID
namespace with it) and a fresh one carries on. A malformed answer costs its check too, but only
MAX_BREAKS of them get a fresh child: honest code never writes on the grader's pipe. Each answer is
handed on as it arrives (nothing is kept here), capped at its check's size and at the submission's
total (Limits.submission_payload). What a child says besides arrays is the grader's own fixed
vocabulary (error kind, exception type, place, function, warnings), its free text one cleaned line.
All processes of one graded submission share a wall-clock budget (Limits.submission_seconds).
"""
import atexit
import functools
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .inside import frames
from .report import clean_line

INSIDE = Path(__file__).resolve().parent / "inside"
GiB, MiB = 1 << 30, 1 << 20
THROWAWAY_UID_BASE = 1 << 24       # uids BASE + (pid mod 2^15) * 2^16 + n: unused by any account
MAX_BREAKS = 2                     # malformed answers of a submission that get a fresh child
MAX_DETAIL = 300                   # characters of a child's free text (an exception's message)
IDENTIFIER = re.compile(r"[A-Za-z_][\w.]{0,99}\Z")
SOURCE_FILE = re.compile(r"captioning/[\w/]{1,200}\.py\Z")
WARNING = re.compile(r"(\w{1,60}) changed its input argument ([1-9]) in place\Z")
_ids_lock, _counter = threading.Lock(), [0]


class SandboxError(Exception):
    """The sandbox itself does not work here: nothing may be graded."""


@dataclass
class Limits:
    check_seconds: float = 5.0        # the least a check gets; else check_factor x the reference's time
    check_factor: float = 50.0
    train_seconds: float = 90.0       # training checks
    import_seconds: float = 30.0
    memory_bytes: int = 4 * GiB       # address space of each process
    submission_memory: int = 6 * GiB  # cgroup: all processes of a submission, tmpfs included
    processes: int = 64               # per process (RLIMIT_NPROC, per uid) and per submission (cgroup)
    output_bytes: int = 64 * 1024     # captured stdout/stderr kept per child
    file_bytes: int = 64 * MiB        # largest file a process may write
    tmpfs_bytes: int = 256 * MiB      # size of the private /tmp and of /dev/shm
    max_payload: int = 64 * MiB       # largest frame payload accepted from a sandboxed process
    submission_payload: int = 256 * MiB  # all answers of one submission together (each check has its own cap)
    submission_seconds: float = 600.0  # wall clock for all children of one grade together
    require_cgroups: bool = False     # refuse to grade where per-submission cgroups are unavailable

    def rlimits(self):
        return {"RLIMIT_AS": self.memory_bytes, "RLIMIT_NPROC": self.processes,
                "RLIMIT_FSIZE": self.file_bytes, "RLIMIT_CORE": 0}


@dataclass
class ChildResult:
    """What the child reported for one check: outputs, or an error {kind, message, function}."""
    outputs: dict = None
    error: dict = None
    warnings: list = field(default_factory=list)


def throwaway_uid():
    """A uid no other live sandboxed process uses: unique per grader process (pid) and per call."""
    with _ids_lock:
        _counter[0] += 1
        return THROWAWAY_UID_BASE + (os.getpid() % (1 << 15) << 16) + _counter[0] % (1 << 16)


# ---------------------------------------------------------------- bubblewrap

@functools.lru_cache(maxsize=None)
def interpreter_paths():
    """The folders the interpreter, its standard library and the venv's packages live in (a tuple,
    worked out once per grader process)."""
    paths = []
    for p in sorted({Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path("/usr")}):
        p = p.resolve()
        if p.is_dir() and not any(q == p or q in p.parents for q in paths):
            paths.append(p)
    return tuple(paths)


@functools.lru_cache(maxsize=None)
def readable_inside():
    """A copy of inside/ that any uid may read, whatever the modes of the course folder: what the
    sandbox binds at /grader. Made once per grader process, removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="grader-inside-%d-" % os.getpid()))
    atexit.register(shutil.rmtree, folder, True)
    for path in INSIDE.glob("*.py"):
        shutil.copyfile(path, folder / path.name)
        (folder / path.name).chmod(0o644)
    folder.chmod(0o755)
    return folder


def bwrap_command(program, fds, scratch, limits):
    """argv running inside/<program> under bubblewrap."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError("bubblewrap is not installed: install the Debian/Ubuntu package 'bubblewrap' "
                           "(apt-get install bubblewrap)")
    argv = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-net",
            "--unshare-uts", "--unshare-cgroup-try", "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str(limits.tmpfs_bytes), "--tmpfs", "/tmp",
            "--perms", "1777", "--size", str(limits.tmpfs_bytes), "--tmpfs", "/dev/shm"]
    bound = interpreter_paths()
    for path in bound:
        for parent in reversed(path.parents[:-1]):  # traversable by the throwaway uid
            argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", str(path), str(path)]
    for link in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(link):
            argv += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link) and Path(link) not in bound:
            argv += ["--ro-bind", link, link]
    argv += ["--ro-bind", str(readable_inside()), "/grader"]
    if scratch is not None:
        argv += ["--ro-bind", str(scratch), "/submission", "--chdir", "/submission"]
    else:
        argv += ["--chdir", "/tmp"]
    if os.geteuid() == 0:
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user"]
    return argv + ["--", str(interpreter()), "-I", "/grader/" + program, *map(str, fds)]


def interpreter():
    """This interpreter's path inside the sandbox: the venv's python under its resolved (bound)
    prefix, so a venv reached through a symbolic link still finds its packages."""
    executable = Path(sys.executable)
    try:
        return Path(sys.prefix).resolve() / executable.relative_to(sys.prefix)
    except ValueError:
        return executable.resolve()


def sandbox_env():
    """A minimal environment: one BLAS thread, no inherited secrets, no bytecode written."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp", "MPLBACKEND": "Agg",
           "PYTHONDONTWRITEBYTECODE": "1"}
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            env[var] = os.environ[var]
    return env


# Temporary folders of a grader process, named PREFIX-PID-...: the staged submission (grade-), the
# sandbox's code (grader-inside-), a Dask task's files (packed-).
TEMP_FOLDER = re.compile(r"(grade|grader-inside|packed)-(\d+)-")


def remove_stale_temp(folder=None):
    """The temporary folders (in folder, by default the system's) of grader processes that are
    gone: a grader killed before it could clean up (a Dask worker out of memory, a killed batch)."""
    for path in Path(folder or tempfile.gettempdir()).iterdir():
        match = TEMP_FOLDER.match(path.name)
        try:
            if match and path.is_dir() and path.lstat().st_uid == os.geteuid():
                os.kill(int(match.group(2)), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:  # alive (another user's) or gone already
            pass


# ---------------------------------------------------------------- cgroups

ENTER_CGROUP = 'for f in "$@"; do shift; [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; done; exec "$@"'


def cgroup_v1_base(controller):
    """Where this process's own cgroup of a v1 controller is mounted, or None."""
    try:
        own = dict(line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().splitlines())
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup" and controller in fields[sep + 3].split(","):
                root, mount = fields[3], fields[4]
                path = own.get(controller) or own.get(",".join(sorted(fields[sep + 3].split(",")))) or "/"
                return Path(mount) / os.path.relpath(path, root)
    except (OSError, ValueError, KeyError):
        pass
    return None


class Cgroup:
    """One submission's cgroups (v1: memory, pids, cpu): its processes' memory (tmpfs included),
    process count and CPU share together. None of it where the machine does not allow it."""
    SETTINGS = {"memory": ("memory.limit_in_bytes",), "pids": ("pids.max",), "cpu": ("cpu.shares",)}

    def __init__(self, limits):
        self.dirs = []
        values = {"memory": limits.submission_memory, "pids": limits.processes, "cpu": 1024}
        with _ids_lock:
            _counter[0] += 1
            name = "captioning-grader-%d-%d" % (os.getpid(), _counter[0])
        try:
            for controller, (setting,) in self.SETTINGS.items():
                base = cgroup_v1_base(controller)
                if base is None or not base.is_dir():
                    raise OSError("no %s cgroup" % controller)
                remove_stale_cgroups(base)
                folder = base / name
                folder.mkdir()
                self.dirs.append(folder)
                (folder / setting).write_text(str(values[controller]))
        except OSError:
            self.remove()
            self.dirs = []

    @property
    def active(self):
        return bool(self.dirs)

    def wrap(self, argv):
        """argv entering this cgroup first."""
        if not self.dirs:
            return argv
        return ["/bin/sh", "-c", ENTER_CGROUP, "sh", *[str(d / "cgroup.procs") for d in self.dirs], "--", *argv]

    def remove(self):
        for folder in self.dirs:
            remove_cgroup(folder)


def remove_cgroup(folder, seconds=10.0):
    """Kill what is left in a cgroup folder and remove it; False when it could not be removed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            for pid in (folder / "cgroup.procs").read_text().split():
                os.kill(int(pid), signal.SIGKILL)
            folder.rmdir()
            return True
        except FileNotFoundError:
            return True
        except (OSError, ValueError):
            time.sleep(0.02)
    return False


def remove_stale_cgroups(base):
    """The cgroups of grader processes that are gone (killed before they could clean up)."""
    for folder in base.glob("captioning-grader-*"):
        try:
            os.kill(int(folder.name.split("-")[2]), 0)
        except ProcessLookupError:
            remove_cgroup(folder, seconds=1.0)
        except (ValueError, IndexError, OSError):
            pass


def isolation_layers(cgroup_active):
    """The isolation layers in force, in words."""
    layers = ["bubblewrap (new root of read-only binds; mount, PID, IPC, network, UTS namespaces; "
              "private /tmp and /dev/shm)", "rlimits (address space, processes, file size)"]
    layers.append("throwaway uid per process" if os.geteuid() == 0 else "user namespace (grader not root: "
                  "no throwaway uid)")
    layers.append("cgroup per submission (memory, processes, CPU share)" if cgroup_active
                  else "no cgroup (not available on this machine)")
    return layers


# ---------------------------------------------------------------- processes

class Sandboxed:
    """One sandboxed process: its stdin gets a JSON request, its output is drained and capped."""

    def __init__(self, program, request, fds, scratch, limits, cgroup):
        self.limits, self.output = limits, bytearray()
        request = dict(request, limits={"rlimits": limits.rlimits(), "uid": throwaway_uid()},
                       max_payload=limits.max_payload)
        self.proc = subprocess.Popen(
            cgroup.wrap(bwrap_command(program, fds, scratch, limits)), pass_fds=fds,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=sandbox_env(),
            start_new_session=True)
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def _drain(self):
        """Keep the first output_bytes of the process's stdout/stderr, discard the rest."""
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            room = self.limits.output_bytes - len(self.output)
            if room > 0:
                self.output += chunk[:room]

    def exit_reason(self):
        code = self.proc.wait()
        if code < 0:
            return "was killed by %s" % signal.Signals(-code).name
        return "exited with code %d" % code

    def tail(self):
        return bytes(self.output[-300:]).decode("utf-8", "replace").strip().replace("\n", " | ")

    def kill(self):
        """Kill the process: bubblewrap's PID namespace takes every process of it along. Idempotent."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.kill()
        self.proc.wait()
        self.drain.join(timeout=1)
        if not self.drain.is_alive():
            self.proc.stdout.close()


def wait_for_bytes(fd, deadline):
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
        raise TimeoutError
    return os.read(fd, 1 << 20)


class Session:
    """The sandboxed processes of one graded submission: its deadline, cgroup, the seed of its
    seeded checks, its answer budget, the malformed answers it sent (`breaks`) and `hangs`:
    (function, unit) for each function that ran past its limit in a check of that unit (later
    checks skip it: see skipped())."""

    def __init__(self, scratch, limits, sources, seed):
        self.scratch, self.limits, self.sources, self.seed = scratch, limits, sources, seed
        self.deadline = time.monotonic() + limits.submission_seconds
        self.hangs = set()
        self.breaks, self.payload_left = 0, limits.submission_payload
        self.lock = threading.Lock()
        self.cgroup = Cgroup(limits)
        if limits.require_cgroups and not self.cgroup.active:
            raise SandboxError("per-submission cgroups are required but this machine does not allow them")

    def skipped(self, own, context):
        """The functions a check skips (they hung before): each hung function, except in the checks
        of a unit whose own function it is (they judge it), unless it hung for that unit or for
        one that unit calls."""
        return sorted({function for function, unit in self.hangs if function != own or unit in context})

    def close(self):
        self.cgroup.remove()

    def over_budget(self):
        return {"kind": "timeout", "function": None,
                "message": "time limit: grading your whole submission took longer than %g s"
                           % self.limits.submission_seconds}

    def not_run(self):
        """The error of every check left once the submission has sent MAX_BREAKS malformed answers."""
        return {"kind": "crash", "function": None,
                "message": "not run: your code sent %d malformed answers on the grader's pipe" % self.breaks}

    def run(self, checks, functions, on_result, probes, swaps=(), reference=None):
        """Run [(key, title, mode, seconds, cap, unit function, [unit, units it calls])] on the
        submission: on_result(key, ChildResult) for each check, as soon as its answer arrives.

        cap: the most bytes of outputs the check may send. probes: the hidden checks among them, as
        a packed frame (frames.pack) of {title: probe}. swaps: unit functions ('module:qualname')
        served by an oracle holding `reference` ({name: source text}); functions: every unit
        function, for attributing errors."""
        pending = list(checks)
        while pending:
            error = (self.over_budget() if time.monotonic() >= self.deadline
                     else self.not_run() if self.breaks >= MAX_BREAKS else None)
            if error:
                for c in pending:
                    on_result(c[0], ChildResult(error=error))
                return
            done = self._one_child(pending, functions, probes, swaps, reference, on_result)
            pending = [c for c in pending if c[0] not in done]

    def _one_child(self, pending, functions, probes, swaps, reference, on_result):
        """The keys of the checks one child got through before it finished or stopped."""
        with self.lock:
            checks = [(n, title, mode, seconds, cap, self.skipped(own, context))
                      for n, title, mode, seconds, cap, own, context in pending]
        request = {"scratch": "/submission", "checks": checks, "sources": self.sources, "probes": probes,
                   "functions": functions, "swaps": list(swaps), "seed": self.seed}
        result_r, result_w = os.pipe()
        fds, oracle, extra = [result_w], None, []
        if swaps:
            to_oracle_r, to_oracle_w = os.pipe()
            from_oracle_r, from_oracle_w = os.pipe()
            oracle = Sandboxed("oracle.py", {"sources": reference, "allowed": [s.split(":")[1] for s in swaps]},
                               [to_oracle_r, from_oracle_w], None, self.limits, self.cgroup)
            fds += [to_oracle_w, from_oracle_r]
            extra = [to_oracle_r, from_oracle_w, to_oracle_w, from_oracle_r]
        child = Sandboxed("child.py", request, fds, self.scratch, self.limits, self.cgroup)
        for fd in [result_w] + extra:
            os.close(fd)
        reader, done = frames.FrameReader(result_r, self.limits.max_payload), set()
        try:
            error = self._wait_ready(child, reader)
            if error:
                for c in pending:
                    on_result(c[0], ChildResult(error=error))
                return {c[0] for c in pending}
            for check_id, _, _, seconds, cap, _, context in pending:
                result = self._next_result(child, reader, check_id, seconds, cap, functions)
                on_result(check_id, result)
                done.add(check_id)
                if result.error and result.error["kind"] in ("timeout", "crash"):
                    if result.error.get("function"):
                        with self.lock:
                            self.hangs.add((result.error["function"], context[0]))
                    break
        finally:
            child.kill()
            if oracle:
                oracle.kill()
            os.close(result_r)
        return done

    def _wait_ready(self, child, reader):
        budget = self.deadline - time.monotonic()
        try:
            header, _ = reader.read(time.monotonic() + min(self.limits.import_seconds, budget), wait_for_bytes, 0)
        except TimeoutError:
            if budget <= self.limits.import_seconds:
                return self.over_budget()
            return {"kind": "timeout", "function": None,
                    "message": "time limit: importing your package took longer than %g s" % self.limits.import_seconds}
        except frames.FrameError as exc:
            return self.malformed(child, "while importing your package", exc)
        except (EOFError, OSError) as exc:
            return crash(child, "while importing your package", exc)
        return None if header.get("ready") is True else self.malformed(child, "while importing your package", None)

    def _next_result(self, child, reader, check_id, seconds, cap, functions):
        """The child's answer to check_id: it reports its own time-outs; a grace period later it
        is killed. An answer larger than cap (or than what is left of the submission's budget) is
        refused from its header."""
        budget = self.deadline - time.monotonic()
        try:
            with self.lock:
                limit = min(cap, self.payload_left)
            header, value = reader.read(time.monotonic() + min(seconds + 2.0, budget), wait_for_bytes, limit)
            if frames.field(header, "id", int) != check_id:
                raise frames.FrameError("an answer to another check")
        except TimeoutError:
            if budget <= seconds + 2.0:
                return ChildResult(error=self.over_budget())
            return ChildResult(error={"kind": "timeout", "function": None,
                                      "message": "time limit: this check took longer than %.3g s" % seconds})
        except frames.FrameError as exc:
            return ChildResult(error=self.malformed(child, "during this check", exc))
        except Exception as exc:  # end of file, a broken pipe: this check only
            return ChildResult(error=crash(child, "during this check", exc))
        with self.lock:
            self.payload_left -= header["size"]
        warnings = child_warnings(header, functions)
        error = frames.field(header, "error", dict)
        if error is not None:
            return ChildResult(error=child_error(error, functions, seconds), warnings=warnings)
        if not isinstance(value, dict):
            return ChildResult(error={"kind": "output", "function": None, "message": "no outputs were returned"})
        return ChildResult(outputs=value, warnings=warnings)

    def malformed(self, child, when, exc):
        """The error of an answer that breaks the frame protocol: the child is killed, and the
        submission gets one break closer to MAX_BREAKS."""
        child.kill()
        with self.lock:
            self.breaks += 1
        return {"kind": "crash", "function": None, "message": "the grading process sent a malformed answer %s%s"
                % (when, " (%s)" % clean_line(exc)[:MAX_DETAIL] if exc else "")}


def child_error(error, functions, seconds):
    """{kind, function, message} of an error a child reported, in the grader's own words: kind,
    exception type, place and function must have their fixed forms; the exception's own message
    is cut to one cleaned line."""
    kind = frames.field(error, "kind", str)
    kind = kind if kind in frames.ERROR_KINDS else "exception"
    function = frames.field(error, "function", str, limit=200)
    function = function if function in functions else None  # a forged name blames nobody
    name = function.split(":")[1] if function else None
    where = frames.field(error, "where", list, [])
    place = ""
    if (len(where) == 3 and isinstance(where[0], str) and SOURCE_FILE.match(where[0]) and type(where[1]) is int
            and isinstance(where[2], str) and IDENTIFIER.match(where[2])):
        place = " (%s, line %d, in %s)" % tuple(where)
    detail = clean_line(frames.field(error, "detail", str, "", MAX_DETAIL)).strip()
    exc_type = frames.field(error, "type", str, "Exception", 100)
    exc_type = exc_type if IDENTIFIER.match(exc_type) else "Exception"
    if kind == "not_implemented":
        message = "not implemented yet: NotImplementedError" + place
    elif kind == "skipped":
        message = "skipped: %s did not finish in an earlier check" % (name or "a function")
    elif kind == "timeout":
        message = "time limit: this check took longer than %.3g s%s" % (seconds, " (in %s)" % name if name else "")
    elif kind == "output":
        message = detail or "your outputs cannot be used"
    else:
        message = exc_type + (": " + detail if detail else "") + place
    return {"kind": kind, "function": function, "message": message}


def child_warnings(header, functions):
    """The warnings of an answer that have the one fixed form (an input changed in place by a unit
    function), at most 5; anything else a child puts there is dropped."""
    names, kept = {f.split(":")[1] for f in functions}, []
    for text in frames.field(header, "warnings", list, [])[:5]:
        match = WARNING.match(text) if isinstance(text, str) else None
        if match and match.group(1) in names and text not in kept:
            kept.append(text)
    return kept


def crash(child, when, exc):
    """The error of a child that stopped answering, with its output's tail."""
    try:
        child.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    child.kill()
    reason = "the grading process %s %s" % (child.exit_reason(), when)
    if child.proc.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL):  # bubblewrap passes a kill on as 137
        reason += " (out of memory or a resource limit)"
    tail = clean_line(child.tail())[:MAX_DETAIL]
    return {"kind": "crash", "function": None, "message": reason + (": " + tail if tail else "")}


def preflight(limits=None):
    """Start one trivial sandboxed child; SandboxError with the cause when it fails."""
    limits = limits or Limits()
    cgroup = Cgroup(limits)
    try:
        if limits.require_cgroups and not cgroup.active:
            raise SandboxError("per-submission cgroups are required but this machine does not allow them")
        probe = Sandboxed("child.py", {"probe": True}, [], None, limits, cgroup)
        try:
            probe.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        probe.kill()
        if probe.proc.returncode != 0:
            raise SandboxError("the sandbox does not work here: a trivial sandboxed process %s: %s"
                               % (probe.exit_reason(), probe.tail() or "no output"))
    finally:
        cgroup.remove()
    return isolation_layers(cgroup.active)
