"""The sandboxed side of grading: imports the submission and runs checks on it.

Started by autograder.sandbox inside bubblewrap as `python -I child.py RESULT_FD [TO_ORACLE FROM_ORACLE]`.
It reads one JSON request on stdin (limits, the public checks' sources, the hidden checks among
the checks to run as probes with their arguments, time limits and output caps, the functions to
replace), applies the limits, drops to its throwaway uid, imports the submission from
/submission and answers with frames (frames.py) on RESULT_FD. It never sees an expected value,
reference code nor the hidden checks' source: a function swapped for the reference is a proxy
that asks the oracle process (oracle.py) over the two extra pipes. With "reference" in its request
it imports the reference package from those source texts instead, runs no check and never reaches
the submission: the honest import (sandbox.Session.reference_imports).

A check that runs past its limit is reported by a watchdog thread, naming the unit function the
main thread was in (so later checks can skip it), before the child exits.
"""
import functools
import importlib.util
import json
import os
import sys
import threading
import time
import traceback
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import frames

PACKAGE = "captioning"


# Syscalls a sandboxed process may not make (they fail with EPERM): kernel keyrings, whose keys
# would outlive the sandbox; sockets, ptrace and other processes' memory; SysV IPC and POSIX
# message queues, which outlive a process; namespaces, mounts, bpf, perf events, userfaultfd and
# io_uring; execve (a new program would be dumpable again, its /proc files its own: it could lower
# its oom_score_adj below the grader's), and prctl(PR_SET_DUMPABLE) for the same reason. clone with
# a namespace flag fails too, and clone3 with ENOSYS (its flags cannot be read by a filter; the C
# library then falls back to clone), as under Docker's default profile.
# Per native audit architecture: (denied numbers, clone, clone3, prctl, first number of another ABI
# sharing it: x32 on x86_64). Any other architecture (i386 through int 0x80, ...) may make no
# syscall at all.
DENIED = {"add_key", "request_key", "keyctl", "socket", "socketpair", "ptrace", "process_vm_readv",
          "process_vm_writev", "shmget", "semget", "msgget", "mq_open", "unshare", "setns", "mount", "umount2",
          "pivot_root", "chroot", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "open_tree",
          "move_mount", "fsopen", "fsmount", "fspick", "execve", "execveat"}
NATIVE_ABIS = {
    0xC000003E: (dict(add_key=248, request_key=249, keyctl=250, socket=41, socketpair=53, ptrace=101,  # x86_64
                      process_vm_readv=310, process_vm_writev=311, shmget=29, semget=64, msgget=68, mq_open=240,
                      unshare=272, setns=308, mount=165, umount2=166, pivot_root=155, chroot=161, bpf=321,
                      perf_event_open=298, userfaultfd=323, io_uring_setup=425, open_tree=428, move_mount=429,
                      fsopen=430, fsmount=432, fspick=433, execve=59, execveat=322), 56, 435, 157, 0x40000000),
    0xC00000B7: (dict(add_key=217, request_key=218, keyctl=219, socket=198, socketpair=199, ptrace=117,  # aarch64
                      process_vm_readv=270, process_vm_writev=271, shmget=194, semget=190, msgget=186, mq_open=180,
                      unshare=97, setns=268, mount=40, umount2=39, pivot_root=41, chroot=51, bpf=280,
                      perf_event_open=241, userfaultfd=282, io_uring_setup=425, open_tree=428, move_mount=429,
                      fsopen=430, fsmount=432, fspick=433, execve=221, execveat=281), 220, 435, 167, None),
}
CLONE_NEW_FLAGS = 0x7E020080  # CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
PR_SET_DUMPABLE = 4


def seccomp_program():
    """The filter as classic BPF instructions (code, jt, jf, k), jumps resolved from labels."""
    LOAD, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF_LD|W|ABS; JMP|JEQ, JGE, JSET|K; RET|K
    ALLOW, EPERM, ENOSYS = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    FIRST_ARGUMENT = 16                                                  # seccomp_data.args[0], low half
    code = [(LOAD, None, None, 4)]                                       # seccomp_data.arch
    for n, (arch, (numbers, clone, clone3, prctl, foreign)) in enumerate(NATIVE_ABIS.items()):
        assert set(numbers) == DENIED
        code.append((JEQ, None, "arch%d" % (n + 1), arch))
        code.append((LOAD, None, None, 0))                               # seccomp_data.nr
        if foreign:
            code.append((JGE, "deny", None, foreign))
        code += [(JEQ, "deny", None, number) for number in sorted(numbers.values())]
        code.append((JEQ, "nosys", None, clone3))
        code.append((JEQ, "clone%d" % n, None, clone))
        code.append((JEQ, None, "allow", prctl))
        code.append((LOAD, None, None, FIRST_ARGUMENT))                  # prctl's option
        code.append((JEQ, "deny", "allow", PR_SET_DUMPABLE))
        code.append(("clone%d" % n,))
        code.append((LOAD, None, None, FIRST_ARGUMENT))                  # clone's flags
        code.append((JSET, "deny", "allow", CLONE_NEW_FLAGS))
        code.append(("arch%d" % (n + 1),))
    code += [(RET, None, None, EPERM), ("allow",), (RET, None, None, ALLOW), ("deny",), (RET, None, None, EPERM),
             ("nosys",), (RET, None, None, ENOSYS)]
    labels, program = {}, []
    for op in code:
        if len(op) == 1:
            labels[op[0]] = len(program)
        else:
            program.append(op)

    def offset(i, target):
        return 0 if target is None else labels[target] - i - 1
    return [(op, offset(i, jt), offset(i, jf), k) for i, (op, jt, jf, k) in enumerate(program)]


def deny_syscalls():
    """Load the seccomp filter (needs no_new_privs)."""
    import ctypes
    import struct
    program = seccomp_program()
    buffer = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in program))

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(22, 2, ctypes.byref(Program(len(program), ctypes.addressof(buffer))), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "the seccomp filter was refused")  # PR_SET_SECCOMP, FILTER


def apply_limits(limits):
    """rlimits, then (as root) the throwaway uid, gid and groups; the process dies with its parent."""
    import ctypes
    import resource
    for name, value in limits["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")  # out of memory, the kernel kills a sandboxed process before the grader
    if os.geteuid() == 0:
        os.setgroups(limits["groups"])
        os.setresgid(limits["gid"], limits["gid"], limits["gid"])
        os.setresuid(limits["uid"], limits["uid"], limits["uid"])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS (bubblewrap sets it too)
    libc.prctl(1, 9, 0, 0, 0)   # PR_SET_PDEATHSIG SIGKILL, after setuid which clears it
    deny_syscalls()
    os.umask(0o077)


def load_checks(sources):
    """The public checks module, in a package `_grader` built from source texts (gradient_check, checks)."""
    package = types.ModuleType("_grader")
    package.__path__ = []
    sys.modules["_grader"] = package
    for name in ("gradient_check", "checks"):
        module = types.ModuleType("_grader." + name)
        module.__package__ = "_grader"
        sys.modules[module.__name__] = module
        exec(compile(sources[name], "<grader %s>" % name, "exec"), module.__dict__)
    return module


class Attribution:
    """Which unit function (module:qualname) a traceback or a running stack is in."""

    def __init__(self, package_dir, functions):
        self.package_dir = package_dir
        self.functions = {}
        for spec in functions:
            module, qualname = spec.split(":")
            path = os.path.join(package_dir, *module.split(".")) + ".py"
            self.functions[(path, qualname.split(".")[-1])] = spec

    def function(self, frames_):
        """The innermost frame that is a unit's function, as 'module:qualname', or None."""
        for filename, name in reversed(frames_):
            spec = self.functions.get((filename, name))
            if spec:
                return spec
        return None

    def where(self, tb_frames):
        """[captioning/file.py, line, function] of the innermost frame in the submission, or None."""
        inside = [f for f in tb_frames if f.filename.startswith(self.package_dir + os.sep)]
        if not inside:
            return None
        f = inside[-1]
        return [os.path.relpath(f.filename, os.path.dirname(self.package_dir)), f.lineno, f.name]

    def describe(self, exc):
        """{"kind", "function", "type", "where", "detail"} of an exception raised by the submission:
        the grader words the message itself (sandbox.child_error)."""
        tb = traceback.extract_tb(exc.__traceback__)
        if isinstance(exc, DidNotFinish):
            return {"kind": frames.ErrorKind.SKIPPED, "function": exc.function}
        if isinstance(exc, ModuleBroken):  # the reason is the import's, the module says where
            return dict(exc.error, kind=frames.ErrorKind.IMPORT, module=exc.module,
                        function=self.function([(f.filename, f.name) for f in tb]))
        cls = type(exc)
        exc_type = cls.__qualname__ if cls.__module__ == "builtins" else "%s.%s" % (cls.__module__, cls.__qualname__)
        try:
            detail = str(exc)[:500]
        except Exception:  # a __str__ that raises
            detail = ""
        kind = frames.ErrorKind.NOT_IMPLEMENTED if isinstance(exc, NotImplementedError) else frames.ErrorKind.EXCEPTION
        described = {"kind": kind, "function": self.function([(f.filename, f.name) for f in tb]), "type": exc_type,
                     "where": self.where(tb), "detail": detail}
        if isinstance(exc, SyntaxError) and isinstance(exc.filename, str) and isinstance(exc.lineno, int) \
                and exc.filename.startswith(self.package_dir + os.sep):  # a file of the submission does not compile
            described.update(where=[os.path.relpath(exc.filename, os.path.dirname(self.package_dir)), exc.lineno,
                                    "<module>"], column=exc.offset, detail=str(exc.msg)[:500])
        return described


class DidNotFinish(Exception):
    """Raised in place of a function that ran past its time limit in an earlier check."""

    def __init__(self, function):
        super().__init__(function)
        self.function = function


class ModuleBroken(ImportError):
    """A use of a module of the submission that failed to import: why it failed (describe()'s
    fields of the import-time exception) and which module."""

    def __init__(self, module, error):
        super().__init__("could not import %s" % module)
        self.module, self.error = module, error


class Broken:
    """Stands for a module of the submission that failed to import: any use raises ModuleBroken."""

    def __init__(self, module, error):
        self.module, self.error = module, error

    def __getattr__(self, name):
        raise ModuleBroken(self.module, self.error)


def import_module(name, attribution):
    """captioning.<name> of the submission, or Broken with the reason it does not import."""
    import importlib
    try:
        return importlib.import_module(PACKAGE + "." + name)
    except BaseException as exc:  # SyntaxError, SystemExit, ImportError, ... at import time
        return Broken(name, attribution.describe(exc))


class Sources:
    """Imports the package from source texts ({path in the package: text}) as if from its files in
    folder: the reference package, which no sandboxed process may read, in the honest import
    (sandbox.Session.reference_imports)."""

    def __init__(self, texts, folder):
        self.texts, self.folder = texts, folder

    def find_spec(self, name, path=None, target=None):
        parts = name.split(".")
        rel = "/".join(parts[1:])
        for file in (rel + "/__init__.py").lstrip("/"), rel + ".py":
            if parts[0] == PACKAGE and file in self.texts:
                package = [] if file.endswith("__init__.py") else None
                return importlib.util.spec_from_file_location(name, os.path.join(self.folder, file), loader=self,
                                                              submodule_search_locations=package)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        text = self.texts[os.path.relpath(module.__file__, self.folder)]
        exec(compile(text, module.__file__, "exec"), module.__dict__)


def lazy_module(name, attribution):
    """A module of the submission imported on first use (checks.LAZY_MODULES: PyTorch's), which
    then stands for it, or for Broken when it does not import."""
    def load():
        module = import_module(name, attribution)
        if isinstance(module, Broken):
            raise ModuleBroken(module.module, module.error)
        return module
    return load


class NoAutodiff:
    """Says why an automatic differentiation package does not import in a numpy unit's process
    (the sandbox keeps the package out of its reach: this finder is only the message)."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in frames.AUTODIFF:
            raise ImportError(frames.NO_AUTODIFF, name=name)
        return None


class Oracle:
    """The client end of the oracle: calls reference functions in another process."""

    def __init__(self, to_fd, from_fd, max_payload):
        self.to_fd, self.reader, self.lock = to_fd, frames.FrameReader(from_fd, max_payload), threading.Lock()

    def proxy(self, name):
        def call(*args):
            with self.lock:
                frames.write_frame(self.to_fd, {"call": name}, args)
                header, value = self.reader.read()
            if "error" in header:
                raise RuntimeError("the reference %s, used in place of yours, failed on the arguments your "
                                   "code gave it" % name)
            return value
        call.__name__ = call.__qualname__ = name
        return call


def lookup(modules, spec):
    """The submission's function spec ('module:qualname'), or None when it is not there."""
    module_name, qualname = spec.split(":")
    owner = modules[module_name]
    if isinstance(owner, Broken):
        return None
    for name in qualname.split("."):
        owner = getattr(owner, name, None)
    return owner


def rebind(modules, spec, function):
    """Put function in place of the submission's function spec, wherever its modules name it."""
    module_name, qualname = spec.split(":")
    owner = modules[module_name]
    if isinstance(owner, Broken):
        return
    if "." in qualname:
        cls, method = qualname.split(".")
        if hasattr(owner, cls):  # else its checks fail on their own
            setattr(getattr(owner, cls), method, function)
        return
    original = getattr(owner, qualname, None)
    for module in modules.values():
        if not isinstance(module, Broken) and getattr(module, qualname, None) is original:
            setattr(module, qualname, function)


class Switchboard:
    """What each of the submission's unit functions runs, check by check: its own code, the
    reference (served by the oracle), or an immediate DidNotFinish (it hung in an earlier check).

    The function objects themselves are switched (their code), so every reference to them follows:
    module attributes, aliases, dispatch tables, partials. A function that cannot be switched so
    (a closure, a builtin) is rebound by name instead."""

    def __init__(self, modules):
        self.modules, self.routes, self.own, self.saved = modules, {}, {}, {}

    def route(self, spec, target):
        """Make spec run target (a callable), or its own code again when target is None."""
        function = self.own.get(spec) or lookup(self.modules, spec)
        if not isinstance(function, types.FunctionType) or function.__code__.co_freevars:
            rebind(self.modules, spec, target or function)
            return
        if spec not in self.own:
            self.own[spec] = function
            self.saved[spec] = (function.__code__, function.__defaults__, function.__kwdefaults__)
        if target is None:
            function.__code__, function.__defaults__, function.__kwdefaults__ = self.saved[spec]
            return
        self.routes[spec] = target
        function.__globals__["__grader_routes__"] = self.routes
        function.__code__, function.__defaults__, function.__kwdefaults__ = trampoline(spec), None, None


def trampoline(spec):
    """Code that calls whatever the switchboard routes spec to."""
    namespace = {}
    name = spec.split(":")[1].split(".")[-1]
    exec(compile("def %s(*args, **kwargs):\n    return __grader_routes__[%r](*args, **kwargs)\n" % (name, spec),
                 "<grader>", "exec"), namespace)
    return namespace[name].__code__


def to_arrays(outputs, cap):
    """Outputs as numeric numpy arrays, or an error saying which one is not or that together they
    are larger than cap bytes."""
    import numpy as np
    arrays = {}
    for key, value in outputs.items():
        array = np.asarray(value) if value is not None else None
        if array is None or array.dtype == object:
            return None, {"kind": frames.ErrorKind.OUTPUT,
                          "detail": "%s is %s, not a numeric array" % (key, type(value).__name__)}
        arrays[str(key)] = array
    size = sum(a.nbytes for a in arrays.values())
    if size > cap:
        return None, {"kind": frames.ErrorKind.OUTPUT,
                      "detail": "your outputs take %d bytes, more than the %d this check allows "
                      "(a few times the reference's)" % (size, cap)}
    return arrays, None


def raiser(spec):
    def did_not_finish(*args, **kwargs):
        raise DidNotFinish(spec)
    return did_not_finish


class Watchdog:
    """Reports a check that runs past its limit, with the unit function it is stuck in, then exits.

    One thread, started before any student code runs (a student's fork bomb may leave no room
    for a new thread later)."""

    def __init__(self, fd, attribution, lock):
        self.fd, self.attribution, self.lock = fd, attribution, lock
        self.current, self.deadline = None, None
        self.main = threading.main_thread().ident
        self.wake = threading.Condition(lock)
        threading.Thread(target=self.watch, daemon=True).start()

    def arm(self, check_id, seconds):
        with self.lock:
            self.current = check_id
            self.deadline = time.monotonic() + seconds
            self.wake.notify()

    def disarm(self):
        """Called with the lock held."""
        self.current = None

    def watch(self):
        with self.lock:
            while True:
                if self.current is None:
                    self.wake.wait()
                elif time.monotonic() < self.deadline:
                    self.wake.wait(self.deadline - time.monotonic())
                else:
                    self.fire()

    def fire(self):
        frame = sys._current_frames().get(self.main)
        stack = []
        while frame is not None:
            stack.append((frame.f_code.co_filename, frame.f_code.co_name))
            frame = frame.f_back
        function = self.attribution.function(list(reversed(stack)))
        error = {"kind": frames.ErrorKind.TIMEOUT, "function": function}
        frames.write_frame(self.fd, {"id": self.current, "error": error})
        os._exit(0)


def probe(request):
    """The grader's check that the sandbox works at all: import what every child imports (numpy
    and, through the solver, h5py), and read none of the files that must be unreadable."""
    import h5py  # noqa: F401
    import numpy.random  # noqa: F401
    for path in request.get("unreadable", []):
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError:
            continue
        print(path, flush=True)
        os._exit(3)  # sandbox.PROBE_READ_SECRETS
    os._exit(0)


def submission_modules(C, request, attribution):
    """{name: module} of the submission's package (of the reference package, from request["reference"]),
    as the checks call it. PyTorch and the modules that need it are imported before any check's
    clock starts, in the network visualization units' processes only."""
    sys.path.insert(0, request["scratch"])
    if "reference" in request:
        sys.meta_path.insert(0, Sources(request["reference"], os.path.join(request["scratch"], PACKAGE)))
    if not request["autodiff"]:
        sys.meta_path.insert(0, NoAutodiff())
    modules = {name: import_module(name, attribution) for name in C.MODULES}
    lazy = {name: C.LazyModule(lazy_module(name, attribution)) for name in getattr(C, "LAZY_MODULES", ())}
    if lazy and request["autodiff"]:
        import torch  # the import takes a second or two
        torch.set_num_threads(1)
        for module in lazy.values():
            try:
                _ = module.__name__  # imports it (a module that does not import: its checks say so)
            except ImportError:
                pass
    modules.update(lazy)
    return modules


def send(fd, check_id, warnings, outputs, error):
    """One check's answer: its outputs, or the error, with the warnings."""
    header = {"id": check_id, "warnings": [str(w)[:300] for w in warnings[:5]]}
    try:
        if error:
            header["error"] = error
            frames.write_frame(fd, header)
        else:
            frames.write_frame(fd, header, outputs)
    except frames.FrameError as exc:
        header.pop("tree", None)
        header["error"] = {"kind": frames.ErrorKind.OUTPUT, "detail": "your outputs cannot be sent: %s" % exc}
        frames.write_frame(fd, header)


def main():
    request = json.loads(sys.stdin.readline())
    apply_limits(request["limits"])
    if request.get("probe"):
        probe(request)
    fd = int(sys.argv[1])
    C = load_checks(request["sources"])
    by_title = {c.title: c for c in C.PUBLIC_CHECKS}
    by_title.update({title: C.probe_check("", title, args)
                     for title, args in frames.unpack(request["probes"]).items()})
    attribution = Attribution(os.path.join(request["scratch"], PACKAGE), request["functions"])
    lock = threading.Lock()
    watchdog = Watchdog(fd, attribution, lock)
    modules = submission_modules(C, request, attribution)
    switchboard = Switchboard(modules)
    if request["swaps"]:
        oracle = Oracle(int(sys.argv[2]), int(sys.argv[3]), request["max_payload"])
        for spec in request["swaps"]:
            switchboard.route(spec, oracle.proxy(spec.split(":")[1]))
    orders = [frames.CheckOrder(*entry) for entry in request["checks"]]
    hung = sorted({spec for order in orders for spec in order.skip} - set(request["swaps"]))
    impl = C.Impl(modules)
    frames.write_frame(fd, {"ready": True})
    for check_id, title, mode, seconds, cap, skip in orders:
        for spec in hung:  # what hung before is skipped where the grader says, else runs
            switchboard.route(spec, raiser(spec) if spec in skip else None)
        watchdog.arm(check_id, seconds)
        impl.warnings = []
        check = by_title[title]
        run = check.run if mode == "run" else C.own_gradient_probe(*check.backward_of, tuple(mode[1:]))
        if check.seeded:
            run = functools.partial(run, seed=request["seed"])
        try:
            outputs, error = to_arrays(run(impl), cap)
        except BaseException as exc:
            outputs, error = None, attribution.describe(exc)
        with lock:
            watchdog.disarm()
            send(fd, check_id, impl.warnings, outputs, error)
    os._exit(0)


if __name__ == "__main__":
    main()
