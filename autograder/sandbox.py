"""Run an untrusted submission's checks in sandboxed processes and collect what they report.

Every process that runs student code (inside/child.py), and the oracle serving reference
functions to it (inside/oracle.py), runs in one of two modes, the strongest the machine allows
(and never weaker than Limits.min_isolation):

- "bubblewrap": a fresh root made of read-only binds of the interpreter and its libraries, the
  sandbox's own code (/grader) and, for the child only, the submission's staged copy
  (/submission); private /tmp and /dev/shm tmpfs with size caps; new PID, IPC, network, UTS and
  mount namespaces with their own /proc; no capabilities but the two needed to drop to a
  throwaway uid; dying with the grader.
- "container", where namespaces are refused (Docker's default seccomp profile, as on
  Gradescope): the container is the outer boundary; inside it each process runs as its own
  throwaway uid in the submission's throwaway group, which alone may reach the staged copy, in a
  private working folder, with a seccomp filter that also refuses sockets, ptrace, other
  processes' memory and namespaces; the grader adopts their orphans (a subreaper), so the
  process limit of each uid bounds all it ever starts; afterwards every process of those uids is
  killed and their files in the shared temporary folders are removed. The grader's files must be
  unreadable to other uids (the preflight checks that from inside).

Only the children that run the network visualization units' checks reach PyTorch (and the other
packages of frames.AUTODIFF): for the others bubblewrap binds an empty folder over each package's,
and container mode leaves them no way into its group-only folder.

In both, as root, each process runs as its own throwaway uid (not in /etc/passwd); rlimits bound
each process, and where the machine allows it a cgroup per graded submission bounds them all
together (memory incl. tmpfs, process count, an equal CPU share). `preflight()` starts one
trivial sandboxed child and raises SandboxError when that fails, so a broken sandbox never
produces a grade; it returns the mode and the layers in force, in words.

A hang, crash or exit costs the check that was running: the child is killed (with every process
it started) and a fresh one carries on. A malformed answer costs its check too, but only
MAX_BREAKS of them get a fresh child: honest code never writes on the grader's pipe. Each answer is
handed on as it arrives (nothing is kept here), capped at its check's size and at the submission's
total (Limits.submission_payload). What a child says besides arrays is the grader's own fixed
vocabulary (error kind, exception type, place, function, warnings), its free text one cleaned line.
All processes of one graded submission share a wall-clock budget (Limits.submission_seconds).

Out of memory the kernel kills sandboxed processes first, whichever used the memory: a child killed
by SIGKILL gets a fresh one once. Killed twice while importing the submission, one more sandboxed
process imports the reference package in its place (Session.reference_imports): where that one
reports ready, the submission's import costs every check; where it is killed too, the machine is
too small (OutOfMemory: no grade).
"""
from __future__ import annotations

import atexit
import ctypes
import functools
import importlib.util
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

from .course import PACKAGE, REFERENCE_PACKAGE
from .inside import frames
from .inside.frames import ErrorKind
from .text import clean_line

INSIDE = Path(__file__).resolve().parent / "inside"
GiB, MiB = 1 << 30, 1 << 20
THROWAWAY_UID_BASE = 1 << 24       # uids BASE + (pid mod 2^15) * 2^16 + n: unused by any account
AUTODIFF_GID = THROWAWAY_UID_BASE - 1  # container mode: the group that may read frames.AUTODIFF's folders
MAX_BREAKS = 2                     # malformed answers of a submission that get a fresh child
MAX_DETAIL = 300                   # characters of a child's free text (an exception's message)
IDENTIFIER = re.compile(r"[A-Za-z_][\w.]{0,99}\Z")
SOURCE_FILE = re.compile(r"captioning/[\w/]{1,200}\.py\Z")
MODULE = re.compile(r"[a-z_]{1,50}(\.[a-z_]{1,50})?\Z")  # a module of the package, as "classifiers.rnn"
WARNING = re.compile(r"(\w{1,60}) changed its input argument ([1-9]) in place\Z")
_ids_lock, _counter = threading.Lock(), [0]


# Files a sandboxed process must not read (container mode relies on their modes), and the exit
# status of a probe that could read one.
GRADER_SECRETS = (REFERENCE_PACKAGE / "rnn_layers.py", Path(__file__).resolve())
PROBE_READ_SECRETS = 3


def reference_sources():
    """{path in the package: source text} of the reference package's modules: what the honest
    import (Session.reference_imports) imports, sent to its sandboxed process only."""
    return {path.relative_to(REFERENCE_PACKAGE).as_posix(): path.read_text()
            for path in sorted(REFERENCE_PACKAGE.rglob("*.py"))}


ISOLATION_MODES = ("container", "bubblewrap")  # weakest first


class SandboxError(Exception):
    """The sandbox itself does not work here: nothing may be graded."""


class OutOfMemory(Exception):
    """The machine ran out of memory grading one submission, before any of its functions ran, and
    the reference package does not import there either: a grader-side failure of that submission
    only (grade it again), never its points."""


@dataclass
class Limits:
    check_seconds: float = 5.0        # the least a check gets; else check_factor x the reference's time
    check_factor: float = 50.0
    gate_seconds: float = 2.0         # the least a gate check gets (large inputs: README rule 7)
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
    min_isolation: str = "bubblewrap"  # the weakest isolation accepted: "bubblewrap" or "container"

    def rlimits(self):
        return {"RLIMIT_AS": self.memory_bytes, "RLIMIT_NPROC": self.processes,
                "RLIMIT_FSIZE": self.file_bytes, "RLIMIT_CORE": 0}


def add_limit_arguments(parser):
    """The sandbox options every front end shares; limits_from(args) reads them."""
    parser.add_argument("--check-seconds", type=float, help="time limit per check (default %g)" % Limits.check_seconds)
    parser.add_argument("--submission-seconds", type=float,
                        help="time limit for a whole submission (default %g)" % Limits.submission_seconds)
    parser.add_argument("--require-cgroups", action="store_true",
                        help="refuse to grade where per-submission cgroups are unavailable")
    parser.add_argument("--min-isolation", choices=ISOLATION_MODES, default="bubblewrap",
                        help="the weakest sandbox accepted (default bubblewrap; 'container' grades where a "
                             "container such as Gradescope's refuses namespaces: see the README)")


def limits_from(args):
    """The Limits the options of add_limit_arguments ask for."""
    limits = Limits(require_cgroups=args.require_cgroups, min_isolation=args.min_isolation)
    if args.check_seconds:
        limits.check_seconds = args.check_seconds
    if args.submission_seconds:
        limits.submission_seconds = args.submission_seconds
    return limits


@dataclass(frozen=True)
class ChildError:
    """Why a check has no outputs, in the grader's own words (child_error words a child's report):
    its kind, the unit function it arose in ('module:qualname', when known), the message the
    student reads, and the package's module that did not import (kind IMPORT)."""
    kind: ErrorKind
    function: str | None
    message: str
    module: str | None = None


@dataclass(frozen=True)
class ChildResult:
    """What the child reported for one check: outputs, or an error."""
    outputs: dict | None = None
    error: ChildError | None = None
    warnings: tuple[str, ...] = ()


class CheckRequest(NamedTuple):
    """One check to run on the submission: its key in the answers, title, mode ("run", or
    ["own_gradient", *point]), time limit, output cap in bytes, the unit function it grades and
    the units whose checks it belongs to and calls ([unit, *units it depends on])."""
    key: int
    title: str
    mode: Any
    seconds: float
    cap: int
    function: str
    context: list


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
    (folder / "empty").mkdir(mode=0o555)  # what bubblewrap shows in place of a package kept out of reach
    folder.chmod(0o755)
    return folder


@functools.lru_cache(maxsize=None)
def autodiff_folders():
    """The folders of the automatic differentiation packages (frames.AUTODIFF) this interpreter
    finds, resolved: kept out of the numpy units' processes' reach."""
    folders = []
    for name in frames.AUTODIFF:
        spec = importlib.util.find_spec(name)
        folders += [Path(p).resolve() for p in (spec and spec.submodule_search_locations) or ()]
    return tuple(folders)


def restrict_autodiff():
    """Container mode: each automatic differentiation package's folder readable by its owner and
    AUTODIFF_GID only (the network visualization units' processes get that group): other uids,
    the numpy units' processes among them, cannot enter it. SandboxError where that cannot be done."""
    for folder in autodiff_folders():
        try:
            os.chown(folder, -1, AUTODIFF_GID)
            folder.chmod(folder.stat().st_mode & 0o700 | 0o050)
        except OSError as exc:
            raise SandboxError("container mode keeps %s out of the numpy units' reach by its folder's "
                               "permissions, which cannot be changed here: %s" % (folder.name, exc)) from None


def bwrap_command(program, fds, scratch, limits, autodiff):
    """argv running inside/<program> under bubblewrap; without autodiff, an empty folder in place of
    each automatic differentiation package's."""
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
    if not autodiff:
        for folder in autodiff_folders():
            argv += ["--ro-bind", str(readable_inside() / "empty"), str(folder)]
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


def sandbox_env(home="/tmp"):
    """A minimal environment: one BLAS thread, no inherited secrets, no bytecode written."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(home), "TMPDIR": str(home), "MPLBACKEND": "Agg",
           "PYTHONDONTWRITEBYTECODE": "1"}
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            env[var] = os.environ[var]
    return env


# ---------------------------------------------------------------- where the processes run

WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue")  # where any uid may leave files


class Box:
    """Where one submission's sandboxed processes run, in `mode` (see the module docstring).

    In container mode: a root-owned folder only the submission's throwaway group may enter,
    holding a copy of the staged submission and one private working folder per process;
    close() kills every process of the box's uids and removes their files."""

    def __init__(self, mode, scratch=None):
        self.mode, self.scratch, self.uids = mode, scratch, []
        self.gid = throwaway_uid()
        self.folder = None
        if mode == "container":
            adopt_orphans()
            self.folder = Path(tempfile.mkdtemp(prefix="grade-%d-box-" % os.getpid()))
            os.chown(self.folder, 0, self.gid)
            self.folder.chmod(0o710)
            if scratch is not None:
                self.scratch = self.folder / "submission"
                shutil.copytree(scratch, self.scratch)

    @property
    def submission(self):
        """The staged copy's path as the child sees it."""
        return "/submission" if self.mode == "bubblewrap" else str(self.scratch)

    def command(self, program, fds, limits, uid, with_submission, autodiff):
        """(argv, working folder, gid) of a process running inside/<program> as uid, which reaches
        the automatic differentiation packages only with autodiff."""
        self.uids.append(uid)
        gid = self.gid if with_submission else uid
        if self.mode == "bubblewrap":
            scratch = self.scratch if with_submission else None
            return bwrap_command(program, fds, scratch, limits, autodiff), None, gid
        work = self.folder / ("work-%d" % uid)
        work.mkdir(mode=0o700)
        os.chown(work, uid, gid)
        return [str(interpreter()), "-I", str(readable_inside() / program), *map(str, fds)], work, gid

    def kill(self, uids):
        """Container mode: kill every process of these uids (those it started too) and remove
        their files (in memory-backed /dev/shm, they would fill the container's memory)."""
        if self.mode == "container":
            kill_uids(uids)
            remove_files_of(set(uids))

    def close(self):
        if self.mode == "container":
            kill_uids(self.uids)
            remove_files_of(set(self.uids) | {self.gid})
            shutil.rmtree(self.folder, ignore_errors=True)


def scan(match):
    """{(pid, start time): whether it is alive} of the processes, zombies included, whose real uid
    satisfies match(uid). Alive: its main thread runs, or, once that one has exited (a zombie in
    /proc/PID/status), another thread still does (it counts more threads than itself: one read,
    so threads that keep replacing each other cannot hide)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                lines = Path("/proc", entry, "status").read_text().splitlines()
                status = dict(line.split(":", 1) for line in lines if ":" in line)
                if match(int(status["Uid"].split()[0])):
                    start = int(Path("/proc", entry, "stat").read_text().rsplit(")", 1)[1].split()[19])
                    state, threads = status["State"].split()[0], int(status["Threads"])
                    found[int(entry), start] = state not in ("Z", "X") or threads > 1
            except (OSError, IndexError, KeyError, ValueError):
                continue
    return found


def processes(match):
    """The pids of live processes whose real uid satisfies match(uid)."""
    return [pid for (pid, _), live in scan(match).items() if live]


def uid_processes(uids):
    """The pids of live processes whose real uid is in uids."""
    return processes(uids.__contains__)


def adopt_orphans():
    """Make this process the subreaper of what it starts: orphans of its sandboxed processes (a
    double fork, a fork-hopping chain) become its children, not the container's init's, and stay
    zombies until kill_uids reaps them, each holding its place in its uid's process count
    (RLIMIT_NPROC): a throwaway uid can start at most Limits.processes processes in all."""
    if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise SandboxError("cannot adopt the sandboxed processes' orphans: %s" % os.strerror(ctypes.get_errno()))


def kill_uids(uids, seconds=20.0):
    """Kill every process whose real uid is in uids, from here (root), then reap the zombies this
    process adopted. Each round kills every live one it finds; the sweep ends when a round finds
    exactly the processes (pid, start time) of the round before, none alive: each was dead or
    killed before this round began, so none could fork since. Nothing of these uids is reaped
    before (see adopt_orphans), so a fork-hopping chain runs out of forks rather than outrunning
    the rounds. SandboxError if any is left after `seconds`."""
    uids, deadline, before = set(uids), time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        found = scan(uids.__contains__)
        live = [pid for (pid, _), is_alive in found.items() if is_alive]
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not live and set(found) == before:
            for pid, _ in found:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:  # not an orphan this process adopted
                    pass
            return
        before = set(found)
        if live:
            time.sleep(0.001)
    raise SandboxError("the submission's processes could not all be killed")


def remove_files_of(ids, folders=WORLD_WRITABLE):
    """Remove what owners (or groups) in ids left in the world-writable folders, descending only
    into world-writable folders (the only others where they could write)."""
    todo = list(folders)
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
                if info.st_uid in ids or info.st_gid in ids:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                elif entry.is_dir(follow_symlinks=False) and info.st_mode & 0o002:
                    todo.append(entry.path)
            except OSError:
                pass


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


def own_cgroup_folders(controller):
    """This process's cgroup folder of a controller (v1, else v2) and the folders above it."""
    base = cgroup_v1_base(controller)
    if base is None:
        try:
            own = Path("/proc/self/cgroup").read_text().split("0::", 1)[1].split("\n")[0]
        except (OSError, IndexError):
            return []
        base = Path("/sys/fs/cgroup", own.lstrip("/"))
    return [base, *base.parents]


def numbers(path):
    """The whole numbers a cgroup file holds, or [] (missing, or "max": no limit)."""
    try:
        return [int(word) for word in path.read_text().split()]
    except (OSError, ValueError):
        return []


def usable_cpus():
    """The CPUs this process may use: its CPU affinity, capped by its cgroups' CPU quotas (v1 or
    v2), as a container's half a CPU is 0.5."""
    cpus = float(len(os.sched_getaffinity(0)))
    for folder in own_cgroup_folders("cpu"):
        quota = numbers(folder / "cpu.cfs_quota_us") + numbers(folder / "cpu.cfs_period_us") or numbers(
            folder / "cpu.max")
        if len(quota) == 2 and quota[0] > 0:
            cpus = min(cpus, quota[0] / quota[1])
    return cpus


def usable_memory():
    """The bytes of memory this process's cgroups allow (the machine's, where they set no limit)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for folder in own_cgroup_folders("memory"):
        for limit in numbers(folder / "memory.limit_in_bytes") or numbers(folder / "memory.max"):
            memory = min(memory, limit)
    return memory


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


def isolation_layers(mode, cgroup_active, why_not_bubblewrap=None):
    """The isolation layers in force, in words."""
    if mode == "bubblewrap":
        layers = ["bubblewrap (new root of read-only binds; mount, PID, IPC, network, UTS namespaces; "
                  "private /tmp and /dev/shm)"]
    else:
        layers = ["container mode, the container the outer boundary (%s)" % why_not_bubblewrap,
                  "private working folder per process; only the submission's group reaches its files",
                  "seccomp (no sockets, ptrace, other processes' memory, namespaces, keyrings, new programs)",
                  "every process of the submission killed and its files removed afterwards"]
    layers.append("rlimits (address space, processes, file size)")
    layers.append("throwaway uid per process" if os.geteuid() == 0 else "user namespace (grader not root: "
                  "no throwaway uid)")
    layers.append("cgroup per submission (memory, processes, CPU share)" if cgroup_active
                  else "no cgroup (not available on this machine)")
    return layers


# ---------------------------------------------------------------- processes

class Sandboxed:
    """One sandboxed process: its stdin gets a JSON request, its output is drained and capped."""

    def __init__(self, program, request, fds, box, limits, cgroup, with_submission=True, autodiff=False):
        self.stopped = False  # killed by the grader (kill() while it ran)
        self.limits, self.output, self.box, self.uid = limits, bytearray(), box, throwaway_uid()
        argv, work, gid = box.command(program, fds, limits, self.uid, with_submission, autodiff)
        request = dict(request, limits={"rlimits": limits.rlimits(), "uid": self.uid, "gid": gid,
                                        "groups": [AUTODIFF_GID] if autodiff else []},
                       max_payload=limits.max_payload, autodiff=autodiff)
        self.proc = subprocess.Popen(
            cgroup.wrap(argv), pass_fds=fds, cwd=work, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=sandbox_env(work or "/tmp"), start_new_session=True)
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
            return "was killed by %s" % signal_name(-code)
        return "exited with code %d" % code

    def tail(self):
        return bytes(self.output[-300:]).decode("utf-8", "replace").strip().replace("\n", " | ")

    def kill(self):
        """Kill the process and every process it started (bubblewrap's PID namespace takes them
        along; in container mode, every process of its uid). Idempotent."""
        self.stopped = self.stopped or self.proc.poll() is None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.kill()
        self.proc.wait()
        self.box.kill([self.uid])
        self.drain.join(timeout=1)
        if not self.drain.is_alive():
            self.proc.stdout.close()


def signal_name(signum):
    try:
        return signal.Signals(signum).name
    except ValueError:  # a real-time signal
        return "signal %d" % signum


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
        self.scratch, self.limits, self.sources, self.seed = scratch, limits, sources, seed  # scratch: the staged copy
        self.deadline = time.monotonic() + limits.submission_seconds
        self.hangs, self.killed = set(), set()
        self.honest = {}  # {autodiff: whether the reference package imports here}: reference_imports
        self.breaks, self.payload_left = 0, limits.submission_payload
        self.lock, self.honest_lock = threading.Lock(), threading.Lock()
        self.cgroup = Cgroup(limits)
        if limits.require_cgroups and not self.cgroup.active:
            self.cgroup.remove()
            raise SandboxError("per-submission cgroups are required but this machine does not allow them")
        self.box = Box(preflight(limits).mode, scratch)

    def skipped(self, own, context):
        """The functions a check skips (they hung before): each hung function, except in the checks
        of a unit whose own function it is (they judge it), unless it hung for that unit or for
        one that unit calls."""
        return sorted({function for function, unit in self.hangs if function != own or unit in context})

    def close(self):
        self.box.close()
        self.cgroup.remove()

    def over_budget(self):
        return ChildError(ErrorKind.TIMEOUT, None, "time limit: grading your whole submission took longer than %g s"
                          % self.limits.submission_seconds)

    def not_run(self):
        """The error of every check left once the submission has sent MAX_BREAKS malformed answers."""
        return ChildError(ErrorKind.CRASH, None, "not run: your code sent %d malformed answers on the grader's pipe"
                          % self.breaks)

    def run(self, checks: list[CheckRequest], functions: list[str], on_result: Callable[[int, ChildResult], None],
            probes: dict[str, Any], swaps: tuple[str, ...] = (), reference: dict[str, str] | None = None,
            autodiff: bool = False) -> None:
        """Run the checks on the submission: on_result(key, ChildResult) for each, as soon as its
        answer arrives. probes: the hidden checks among them, as
        a packed frame (frames.pack) of {title: probe}. swaps: unit functions ('module:qualname')
        served by an oracle holding `reference` ({name: source text}); functions: every unit
        function, for attributing errors; autodiff: the children may import PyTorch (the network
        visualization units' checks)."""
        pending = list(checks)
        while pending:
            error = (self.over_budget() if time.monotonic() >= self.deadline
                     else self.not_run() if self.breaks >= MAX_BREAKS
                     else self.too_large() if self.honest.get(autodiff) else None)
            if error:
                for c in pending:
                    on_result(c.key, ChildResult(error=error))
                return
            done = self._one_child(pending, functions, probes, swaps, reference, on_result, autodiff)
            pending = [c for c in pending if c.key not in done]

    def _one_child(self, pending, functions, probes, swaps, reference, on_result, autodiff):
        """The keys of the checks one child got through before it finished or stopped."""
        with self.lock:
            checks = [frames.CheckOrder(c.key, c.title, c.mode, c.seconds, c.cap, self.skipped(c.function, c.context))
                      for c in pending]
        request = self.child_request(checks, functions, probes, swaps)
        result_r, result_w = os.pipe()
        fds, oracle, extra = [result_w], None, []
        if swaps:
            to_oracle_r, to_oracle_w = os.pipe()
            from_oracle_r, from_oracle_w = os.pipe()
            oracle = Sandboxed("oracle.py", {"sources": reference, "allowed": [s.split(":")[1] for s in swaps]},
                               [to_oracle_r, from_oracle_w], self.box, self.limits, self.cgroup, False)
            fds += [to_oracle_w, from_oracle_r]
            extra = [to_oracle_r, from_oracle_w, to_oracle_w, from_oracle_r]
        child = Sandboxed("child.py", request, fds, self.box, self.limits, self.cgroup, autodiff=autodiff)
        for fd in [result_w] + extra:
            os.close(fd)
        reader, done = frames.FrameReader(result_r, self.limits.max_payload), set()
        try:
            error = self._wait_ready(child, reader)
            if error and killed(child):
                if self.killed_once(None):
                    return done  # a fresh child tries again
                child.kill()  # every process it started goes, with its memory
                if not self.reference_imports(functions, autodiff):
                    raise OutOfMemory("the grading machine ran out of memory: a sandboxed process was killed twice "
                                      "while it imported the submission, before any of its functions ran, and once "
                                      "more importing the reference package in its place; grade it again on a "
                                      "machine with more memory")
                error = self.too_large()
            if error:
                for c in pending:
                    on_result(c.key, ChildResult(error=error))
                return {c.key for c in pending}
            for c in pending:
                result = self._next_result(child, reader, c.key, c.seconds, c.cap, functions)
                if result.error and killed(child) and self.killed_once(c.key):
                    break  # a fresh child tries this check again
                on_result(c.key, result)
                done.add(c.key)
                if result.error and result.error.kind in (ErrorKind.TIMEOUT, ErrorKind.CRASH):
                    if result.error.function:
                        with self.lock:
                            self.hangs.add((result.error.function, c.context[0]))
                    break
        finally:
            child.kill()
            if oracle:
                oracle.kill()
            os.close(result_r)
        return done

    def child_request(self, checks, functions, probes, swaps):
        """The request of a child.py running checks (frames.CheckOrder) on the staged submission."""
        return {"scratch": self.box.submission, "checks": checks, "sources": self.sources, "probes": probes,
                "functions": functions, "swaps": list(swaps), "seed": self.seed}

    def killed_once(self, key):
        """Whether this is the first time a child was killed by SIGKILL importing the package (key
        None) or running check key. Out of memory, the kernel kills sandboxed processes first,
        whichever process used the memory: the first kill gets a fresh child, the second counts."""
        with self.lock:
            first = key not in self.killed
            self.killed.add(key)
        return first

    def reference_imports(self, functions, autodiff):
        """Whether the reference package imports on this machine as a child of this family (autodiff)
        imports the submission: one sandboxed process imports it from its source texts, sent to that
        process only, and must report ready. Asked once per session and family."""
        with self.honest_lock:
            if autodiff not in self.honest:
                request = dict(self.child_request([], functions, frames.pack({}), ()), reference=reference_sources())
                result_r, result_w = os.pipe()
                honest = Sandboxed("child.py", request, [result_w], self.box, self.limits, self.cgroup,
                                   with_submission=False, autodiff=autodiff)
                os.close(result_w)
                try:
                    reader = frames.FrameReader(result_r, self.limits.max_payload)
                    self.honest[autodiff] = self._wait_ready(honest, reader) is None
                finally:
                    honest.kill()
                    os.close(result_r)
            return self.honest[autodiff]

    def too_large(self):
        """The error of every check of a submission whose import the machine cannot hold where the
        reference package's fits: its module-level code took the memory."""
        memory = usable_memory()
        if self.cgroup.active:
            memory = min(memory, self.limits.submission_memory)
        return ChildError(ErrorKind.CRASH, None, "killed (SIGKILL) twice while importing your package, where the "
                          "reference package imports: most likely out of memory, more than this grading machine can "
                          "give it (%d MB in all); load data inside your functions, not when a module is imported"
                          % (memory // MiB))

    def _wait_ready(self, child, reader):
        budget = self.deadline - time.monotonic()
        try:
            header, _ = reader.read(time.monotonic() + min(self.limits.import_seconds, budget), wait_for_bytes, 0)
        except TimeoutError:
            if budget <= self.limits.import_seconds:
                return self.over_budget()
            return ChildError(ErrorKind.TIMEOUT, None,
                              "time limit: importing your package took longer than %g s" % self.limits.import_seconds)
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
            return ChildResult(error=ChildError(ErrorKind.TIMEOUT, None,
                                                "time limit: this check took longer than %.3g s" % seconds))
        except frames.FrameError as exc:
            return ChildResult(error=self.malformed(child, "during this check", exc))
        except Exception as exc:  # end of file, a broken pipe: this check only
            return ChildResult(error=crash(child, "during this check", exc))
        with self.lock:
            self.payload_left -= header["size"]
        warnings = child_warnings(header, functions)
        error = frames.field(header, "error", dict)
        if error is not None:
            return ChildResult(error=child_error(error, functions, seconds), warnings=tuple(warnings))
        if not isinstance(value, dict):
            return ChildResult(error=ChildError(ErrorKind.OUTPUT, None, "no outputs were returned"))
        return ChildResult(outputs=value, warnings=tuple(warnings))

    def malformed(self, child, when, exc):
        """The error of an answer that breaks the frame protocol: the child is killed, and the
        submission gets one break closer to MAX_BREAKS."""
        child.kill()
        with self.lock:
            self.breaks += 1
        return ChildError(ErrorKind.CRASH, None, "the grading process sent a malformed answer %s%s"
                          % (when, " (%s)" % clean_line(exc)[:MAX_DETAIL] if exc else ""))


def child_place(error: dict) -> str:
    """' (captioning/file.py, line N, in f)' of a child's error when its "where" has that fixed form,
    ' (captioning/file.py, line N, column C)' when a file does not compile, else ''."""
    where = frames.field(error, "where", list, [])
    if (len(where) == 3 and isinstance(where[0], str) and SOURCE_FILE.match(where[0]) and type(where[1]) is int
            and isinstance(where[2], str) and (IDENTIFIER.match(where[2]) or where[2] == "<module>")):
        column = frames.field(error, "column", int)
        if column is not None and where[2] == "<module>":
            return " (%s, line %d, column %d)" % (where[0], where[1], column)
        return " (%s, line %d, in %s)" % tuple(where)
    return ""


def child_error(error: dict, functions: list[str], seconds: float) -> ChildError:
    """The ChildError of an error a child reported, in the grader's own words: kind, exception
    type, place and function must have their fixed forms; the exception's own message is cut to
    one cleaned line."""
    kind = frames.field(error, "kind", str)
    kind = ErrorKind(kind) if kind in frames.ERROR_KINDS else ErrorKind.EXCEPTION
    function = frames.field(error, "function", str, limit=200)
    function = function if function in functions else None  # a forged name blames nobody
    name = function.split(":")[1] if function else None
    detail = clean_line(frames.field(error, "detail", str, "", MAX_DETAIL)).strip()
    exc_type = frames.field(error, "type", str, "Exception", 100)
    exc_type = exc_type if IDENTIFIER.match(exc_type) else "Exception"
    messages = {
        ErrorKind.NOT_IMPLEMENTED: lambda: "not implemented yet: NotImplementedError" + child_place(error),
        ErrorKind.SKIPPED: lambda: "skipped: %s did not finish in an earlier check" % (name or "a function"),
        ErrorKind.TIMEOUT: lambda: "time limit: this check took longer than %.3g s%s"
                                   % (seconds, " (in %s)" % name if name else ""),
        ErrorKind.OUTPUT: lambda: detail or "your outputs cannot be used",
    }
    message = messages.get(kind, lambda: exc_type + (": " + detail if detail else "") + child_place(error))()
    module = frames.field(error, "module", str, limit=100) if kind is ErrorKind.IMPORT else None
    if module is not None:
        module = module if MODULE.match(module) else "?"
        message = "could not import %s/%s.py: %s" % (PACKAGE, module.replace(".", "/"), message)
    return ChildError(kind, function, message, module)


def child_warnings(header, functions):
    """The warnings of an answer that have the one fixed form (an input changed in place by a unit
    function), at most 5; anything else a child puts there is dropped."""
    names, kept = {f.split(":")[1] for f in functions}, []
    for text in frames.field(header, "warnings", list, [])[:5]:
        match = WARNING.match(text) if isinstance(text, str) else None
        if match and match.group(1) in names and text not in kept:
            kept.append(text)
    return kept


def killed(child):
    """Whether the child was killed by SIGKILL, not by the grader (bubblewrap passes a kill on as
    exit status 137)."""
    return not child.stopped and child.proc.poll() in (-signal.SIGKILL, 128 + signal.SIGKILL)


def crash(child, when, exc):
    """The error of a child that stopped answering, with its output's tail."""
    try:
        child.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    child.kill()
    reason = "the grading process %s %s" % (child.exit_reason(), when)
    if killed(child):
        reason += " (out of memory or a resource limit)"
    tail = clean_line(child.tail())[:MAX_DETAIL]
    return ChildError(ErrorKind.CRASH, None, reason + (": " + tail if tail else ""))


class Isolation(NamedTuple):
    mode: str     # "bubblewrap" or "container"
    layers: tuple  # the layers in force, in words


def preflight(limits=None):
    """The strongest mode this machine allows, not weaker than limits.min_isolation, seen to work
    by starting one trivial sandboxed child in it (once per process for given settings); else
    SandboxError with the cause, in one line."""
    limits = limits or Limits()
    if limits.min_isolation not in ISOLATION_MODES:
        raise SandboxError("unknown isolation %r: choose one of %s"
                           % (limits.min_isolation, ", ".join(ISOLATION_MODES)))
    return _preflight(limits.require_cgroups, limits.min_isolation)


@functools.lru_cache(maxsize=None)
def _preflight(require_cgroups, min_isolation):
    remove_stale_temp()  # first, what killed graders left in the temporary folder goes
    limits = Limits(require_cgroups=require_cgroups)
    try:
        return Isolation("bubblewrap", tuple(probe("bubblewrap", limits)))
    except SandboxError as exc:
        if min_isolation == "bubblewrap":
            raise SandboxError("%s (where a container refuses namespaces, as Docker's does, staff may lower "
                               "the minimum: --min-isolation container)" % exc) from None
        if not can_change_uid():
            raise SandboxError("no isolation possible here: %s; and the grader cannot run student code as another "
                               "uid either (it needs root with CAP_SETUID and CAP_SETGID)" % exc) from None
        restrict_autodiff()
        return Isolation("container", tuple(probe("container", limits, str(exc))))


def can_change_uid():
    """Whether this process may switch to a throwaway uid and gid (root with CAP_SETUID, CAP_SETGID)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    effective = int(status.get("CapEff", "0").strip(), 16)
    return os.geteuid() == 0 and effective & (1 << 6 | 1 << 7) == 1 << 6 | 1 << 7


def probe(mode, limits, why_not_bubblewrap=None):
    """Start one trivial sandboxed child in mode; its layers, or SandboxError saying why not.
    In container mode the child also tries to read the grader's files: they must be root-only."""
    cgroup = Cgroup(limits)
    box = Box(mode)
    try:
        if limits.require_cgroups and not cgroup.active:
            raise SandboxError("per-submission cgroups are required but this machine does not allow them")
        secrets = ([str(path) for path in GRADER_SECRETS] + [str(f / "__init__.py") for f in autodiff_folders()]
                   if mode == "container" else [])
        child = Sandboxed("child.py", {"probe": True, "unreadable": secrets}, [], box, limits, cgroup, False)
        try:
            child.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        child.kill()
        if child.proc.returncode == PROBE_READ_SECRETS:
            raise SandboxError("container isolation needs the grader's files to be unreadable by other users, but "
                               "a sandboxed process read %s: make the kit's folder root-only (chmod -R go-rwx)"
                               % child.tail())
        if child.proc.returncode != 0:
            raise SandboxError("%s does not work here: a trivial sandboxed process %s: %s"
                               % (mode, child.exit_reason(), child.tail() or "no output"))
    finally:
        box.close()
        cgroup.remove()
    return isolation_layers(mode, cgroup.active, why_not_bubblewrap)
