"""The sandboxed side of grading: imports the submission and runs checks on it.

The parent starts `python -I -c <this file's text> RESULT_FD` and writes one JSON request to
stdin: the limits, the scratch folder holding the submission's `captioning` package, the
trusted sources (check definitions, reference code for swapped-in dependencies) and the check
ids to run. The child applies the limits, drops privileges, imports the submission and sends back
one frame per check on RESULT_FD: a JSON header line, then the outputs as an .npz of `size` bytes.
It never sees an expected value, and it runs only stdlib + numpy: no pickle crosses the pipe.
"""
import io
import json
import os
import sys
import traceback
import types


def hide_folders(libc, folders):
    """Private mount namespace with an empty read-only tmpfs over each folder (root only)."""
    if not folders or libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        return
    libc.mount(b"none", b"/", None, (1 << 18) | (1 << 14), None)  # MS_PRIVATE | MS_REC
    for folder in folders:
        libc.mount(b"tmpfs", folder.encode(), b"tmpfs", 1 | 2 | 4 | 8, b"size=4k,mode=0555")  # RDONLY NOSUID NODEV NOEXEC


def apply_limits(limits):
    """rlimits, no network, the grader's files hidden, no new privileges and (when root) a
    throwaway unprivileged user: all before any student code runs."""
    import ctypes
    import resource
    libc = ctypes.CDLL(None, use_errno=True)
    for name, value in limits["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if limits.get("isolate_network"):
        libc.unshare(0x40000000)  # CLONE_NEWNET; best effort
    if os.geteuid() == 0:
        hide_folders(libc, limits.get("hide"))
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: setuid programs cannot give root back
    if os.geteuid() == 0 and limits.get("uid") is not None:
        os.setgroups([])
        os.setresgid(limits["gid"], limits["gid"], limits["gid"])
        os.setresuid(limits["uid"], limits["uid"], limits["uid"])
    libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG SIGKILL (after setuid, which clears it): dies with the grader
    os.umask(0o007)


def load_trusted(sources):
    """Build the package `_grader` from source texts (checks, gradient_check, hidden, reference)."""
    package = types.ModuleType("_grader")
    package.__path__ = []
    sys.modules["_grader"] = package
    modules = {}
    for name, text in sources.items():
        module = types.ModuleType("_grader." + name)
        module.__package__ = "_grader"
        sys.modules[module.__name__] = module
        modules[name] = module
    for name in ("gradient_check", "checks", "hidden", "ref_layers", "ref_rnn_layers", "ref_rnn"):
        if name in modules:
            exec(compile(sources[name], "<grader %s>" % name, "exec"), modules[name].__dict__)
    return modules


def where(exc, package_dir):
    """'file.py, line N, in f' of the innermost traceback frame inside the submission, or ''."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(package_dir)]
    if not frames:
        return ""
    f = frames[-1]
    return " (%s, line %d, in %s)" % (os.path.relpath(f.filename, os.path.dirname(package_dir)), f.lineno, f.name)


def describe(exc, package_dir):
    """One line: the exception, with the student's own file and line."""
    if isinstance(exc, NotImplementedError):
        return "not implemented yet: NotImplementedError" + where(exc, package_dir)
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:500] + where(exc, package_dir)


class Broken:
    """Stands for a module of the submission that failed to import: any use raises ImportError."""

    def __init__(self, message):
        self.message = message

    def __getattr__(self, name):
        raise ImportError(self.message)


def import_module(name, package_dir):
    """captioning.<name> of the submission, or Broken with the reason it does not import."""
    import importlib
    try:
        return importlib.import_module("captioning." + name)
    except BaseException as exc:  # SyntaxError, SystemExit, ImportError, ... at import time
        return Broken("could not import captioning/%s.py: %s" % (name.replace(".", "/"), describe(exc, package_dir)))


def to_arrays(outputs):
    """Outputs as numeric numpy arrays, or a message saying which one is not."""
    import numpy as np
    arrays = {}
    for key, value in outputs.items():
        array = np.asarray(value) if value is not None else None
        if array is None or array.dtype == object:
            return None, "%s is %s, not a numeric array" % (key, type(value).__name__)
        arrays[key] = array
    return arrays, None


def send(fd, header, arrays=None):
    import numpy as np
    payload = b""
    if arrays:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        payload = buffer.getvalue()
    header["size"] = len(payload)
    data = (json.dumps(header) + "\n").encode() + payload
    while data:
        data = data[os.write(fd, data):]


def swap_in(impl, names, trusted):
    """Replace the submission's units `names` by the reference ones, wherever they are used.

    A layer function is replaced in rnn_layers and in the model's module; a model method such as
    "CaptioningRNN.loss (rnn)" is replaced on the submission's CaptioningRNN class.
    """
    for name in names:
        if name.startswith("CaptioningRNN."):
            method = name.split(".")[1].split()[0]
            setattr(impl.model_module.CaptioningRNN, method, getattr(trusted["ref_rnn"].CaptioningRNN, method))
            continue
        reference = getattr(trusted["ref_rnn_layers"], name)
        # Rebound to the submission's module: it calls the submission's other (or swapped) layers.
        function = types.FunctionType(reference.__code__, vars(impl.rnn_layers), name, reference.__defaults__)
        setattr(impl.rnn_layers, name, function)
        if hasattr(impl.model_module, name):
            setattr(impl.model_module, name, function)


def main():
    fd = int(sys.argv[1])
    request = json.loads(sys.stdin.readline())
    apply_limits(request["limits"])
    trusted = load_trusted(request.pop("sources"))  # reference sources come only with swaps
    C = trusted["checks"]
    checks = C.PUBLIC_CHECKS + (trusted["hidden"].hidden_checks(C) if "hidden" in trusted else [])
    package_dir = os.path.join(request["scratch"], "captioning")
    sys.path.insert(0, request["scratch"])
    os.chdir(request["scratch"])
    impl = C.Impl({name: import_module(name, package_dir) for name in C.MODULES})
    try:
        swap_in(impl, request["swaps"], trusted)
    except ImportError:
        pass  # the module to patch is broken itself: its checks fail with its own error
    send(fd, {"ready": True})
    for check_id in request["checks"]:
        try:
            outputs = checks[check_id].run(impl)
            arrays, error = to_arrays(outputs)
        except BaseException as exc:
            arrays, error = None, describe(exc, package_dir)
        send(fd, {"id": check_id, "error": error, "warnings": impl.warnings}, arrays)
        impl.warnings = []
    os._exit(0)


if __name__ == "__main__":
    main()
