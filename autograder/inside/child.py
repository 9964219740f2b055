"""The sandboxed side of grading: imports the submission and runs checks on it.

Started by autograder.sandbox inside bubblewrap as `python -I child.py RESULT_FD [TO_ORACLE FROM_ORACLE]`.
It reads one JSON request on stdin (limits, the public checks' sources, the hidden checks among
the checks to run as probes with their arguments, time limits and output caps, the functions to
replace), applies the limits, drops to its throwaway uid, imports the submission from
/submission and answers with frames (frames.py) on RESULT_FD. It never sees an expected value,
reference code nor the hidden checks' source: a function swapped for the reference is a proxy
that asks the oracle process (oracle.py) over the two extra pipes.

A check that runs past its limit is reported by a watchdog thread, naming the unit function the
main thread was in (so later checks can skip it), before the child exits.
"""
import functools
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


# Syscalls a sandboxed process may not make: the kernel keyrings (add_key, request_key, keyctl),
# whose keys would outlive the sandbox in its uid's keyring. Per native audit architecture: its
# denied numbers and the first number of another ABI sharing it (x32 on x86_64). Any other
# architecture (the i386 ABI through int 0x80, ...) may make no syscall at all.
NATIVE_ABIS = {0xC000003E: ((248, 249, 250), 0x40000000),   # x86_64
               0xC00000B7: ((217, 218, 219), None)}         # aarch64


def deny_syscalls():
    """A seccomp filter failing the denied syscalls (and foreign ABIs) with EPERM (needs no_new_privs)."""
    import ctypes
    import struct
    LOAD, JEQ, JGE, RET = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS; BPF_JMP|JEQ|K, BPF_JMP|JGE|K; BPF_RET|K
    ALLOW, EPERM = 0x7FFF0000, 0x00050000 | 1     # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    blocks = []
    for arch, (numbers, foreign) in NATIVE_ABIS.items():
        tests = [(JGE, foreign)] if foreign else []
        tests += [(JEQ, n) for n in numbers]
        blocks.append((arch, tests))
    length = 1 + sum(len(tests) + 3 for _, tests in blocks) + 1
    program = [(LOAD, 0, 0, 4)]                              # seccomp_data.arch
    for arch, tests in blocks:
        program.append((JEQ, 0, len(tests) + 2, arch))       # another architecture: the next block
        program.append((LOAD, 0, 0, 0))                      # seccomp_data.nr
        for code, k in tests:
            program.append((code, length - 1 - (len(program) + 1), 0, k))  # to the final EPERM
        program.append((RET, 0, 0, ALLOW))
    program.append((RET, 0, 0, EPERM))                       # a foreign architecture, or a denied call
    buffer = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in program))

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(22, 2, ctypes.byref(Program(len(program), ctypes.addressof(buffer))), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "the seccomp filter was refused")  # PR_SET_SECCOMP, FILTER


def apply_limits(limits):
    """rlimits, then (as root) the throwaway uid and gid; the process dies with its parent."""
    import ctypes
    import resource
    for name, value in limits["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(limits["uid"], limits["uid"], limits["uid"])
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
            return {"kind": "skipped", "function": exc.function}
        cls = type(exc)
        exc_type = cls.__qualname__ if cls.__module__ == "builtins" else "%s.%s" % (cls.__module__, cls.__qualname__)
        try:
            detail = str(exc)[:500]
        except Exception:  # a __str__ that raises
            detail = ""
        kind = "not_implemented" if isinstance(exc, NotImplementedError) else "exception"
        return {"kind": kind, "function": self.function([(f.filename, f.name) for f in tb]), "type": exc_type,
                "where": self.where(tb), "detail": detail}


class DidNotFinish(Exception):
    """Raised in place of a function that ran past its time limit in an earlier check."""

    def __init__(self, function):
        super().__init__(function)
        self.function = function


class Broken:
    """Stands for a module of the submission that failed to import: any use raises ImportError."""

    def __init__(self, message):
        self.message = message

    def __getattr__(self, name):
        raise ImportError(self.message)


def import_module(name, attribution):
    """captioning.<name> of the submission, or Broken with the reason it does not import."""
    import importlib
    try:
        return importlib.import_module(PACKAGE + "." + name)
    except BaseException as exc:  # SyntaxError, SystemExit, ImportError, ... at import time
        error = attribution.describe(exc)
        return Broken("could not import %s/%s.py: %s%s%s" % (
            PACKAGE, name.replace(".", "/"), error["type"], ": " * bool(error["detail"]), error["detail"]))


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
                                   "code gave it: %s" % (name, frames.field(header, "error", str, "?", 300)))
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
            return None, {"kind": "output", "detail": "%s is %s, not a numeric array" % (key, type(value).__name__)}
        arrays[str(key)] = array
    size = sum(a.nbytes for a in arrays.values())
    if size > cap:
        return None, {"kind": "output", "detail": "your outputs take %d bytes, more than the %d this check allows "
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
        frames.write_frame(self.fd, {"id": self.current, "error": {"kind": "timeout", "function": function}})
        os._exit(0)


def main():
    request = json.loads(sys.stdin.readline())
    apply_limits(request["limits"])
    if request.get("probe"):  # the grader's check that the sandbox works at all
        import h5py  # noqa: F401 (what every child imports: numpy and, through the solver, h5py)
        import numpy.random  # noqa: F401
        os._exit(0)
    fd = int(sys.argv[1])
    C = load_checks(request["sources"])
    by_title = {c.title: c for c in C.PUBLIC_CHECKS}
    by_title.update({title: C.probe_check("", title, probe)
                     for title, probe in frames.unpack(request["probes"]).items()})
    scratch = request["scratch"]
    attribution = Attribution(os.path.join(scratch, PACKAGE), request["functions"])
    lock = threading.Lock()
    watchdog = Watchdog(fd, attribution, lock)
    sys.path.insert(0, scratch)
    modules = {name: import_module(name, attribution) for name in C.MODULES}
    switchboard = Switchboard(modules)
    if request["swaps"]:
        oracle = Oracle(int(sys.argv[2]), int(sys.argv[3]), request["max_payload"])
        for spec in request["swaps"]:
            switchboard.route(spec, oracle.proxy(spec.split(":")[1]))
    hung = sorted({spec for entry in request["checks"] for spec in entry[5]} - set(request["swaps"]))
    impl = C.Impl(modules)
    frames.write_frame(fd, {"ready": True})
    for check_id, title, mode, seconds, cap, skip in request["checks"]:
        for spec in hung:  # what hung before is skipped where the grader says, else runs
            switchboard.route(spec, raiser(spec) if spec in skip else None)
        watchdog.arm(check_id, seconds)
        impl.warnings = []
        check = by_title[title]
        run = C.own_gradient_probe(*check.backward_of) if mode == "own_gradient" else check.run
        if check.seeded:
            run = functools.partial(run, seed=request["seed"])
        try:
            outputs, error = to_arrays(run(impl), cap)
        except BaseException as exc:
            outputs, error = None, attribution.describe(exc)
        with lock:
            watchdog.disarm()
            header = {"id": check_id, "warnings": [str(w)[:300] for w in impl.warnings[:5]]}
            try:
                if error:
                    header["error"] = error
                    frames.write_frame(fd, header)
                else:
                    frames.write_frame(fd, header, outputs)
            except frames.FrameError as exc:
                header.pop("tree", None)
                header["error"] = {"kind": "output", "detail": "your outputs cannot be sent: %s" % exc}
                frames.write_frame(fd, header)
    os._exit(0)


if __name__ == "__main__":
    main()
