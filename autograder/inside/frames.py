"""The frame protocol between the grader and its sandboxed processes, written once for both ends.

A frame is one JSON header line, then `size` bytes: the raw data of the frame's arrays, one after
the other (no pickle, ever). Values that travel (check outputs, arguments and results of a
reference function served by the oracle, caches) are trees: the header's `tree` field is a
skeleton of {"a": [dtype, shape]} (the next array of the payload), {"t": [...]} tuple, {"l": [...]}
list, {"d": {...}} dict with text keys, {"v": x} a JSON scalar; numpy scalars travel as 0-d arrays.

Frames from a sandboxed process are untrusted. `FrameReader.read` refuses (FrameError, costing only
the check that sent it) a header longer than MAX_HEADER, nested deeper than MAX_DEPTH or with more
than MAX_NODES nodes, a payload over the reader's cap, dtypes other than booleans and numbers, and
arrays whose declared shape times itemsize does not add up exactly to the payload; nothing is
allocated beyond the payload itself. Each end checks the fields it reads (`field`).

Frames, as sent:
  grader -> child   in its JSON request, packed (pack())      the hidden checks' probes and arguments
  child -> grader   {"ready": true}                          the submission imported
                    {"id": ID, "tree": T, "warnings": [..]}  a check's outputs (a dict of arrays)
                    {"id": ID, "error": E, "warnings": [..]} E = {"kind", "function", "type", "where",
                                                             "detail"} (sandbox.child_error words it)
  child -> oracle   {"call": NAME, "tree": T}                 arguments of a swapped-in function
  oracle -> child   {"tree": T} or {"error": MESSAGE}        its result
"""
from __future__ import annotations

import base64
import json
import os
import sys
from enum import Enum
from typing import Any, Callable, NamedTuple

import numpy as np

MAX_HEADER = 64 * 1024
MAX_DEPTH = 32
MAX_NODES = 20000


class ErrorKind(str, Enum):
    """Why a check has no outputs: what a child reports (all but CRASH) or the grader sees."""
    NOT_IMPLEMENTED = "not_implemented"  # the unit function raised NotImplementedError
    EXCEPTION = "exception"              # it raised something else
    TIMEOUT = "timeout"                  # the check ran past its limit
    SKIPPED = "skipped"                  # it calls a function that hung in an earlier check
    OUTPUT = "output"                    # its outputs cannot be used (not numeric, too large)
    IMPORT = "import"                    # a module of the package did not import
    CRASH = "crash"                      # the process stopped or broke the protocol (grader side)


ERROR_KINDS = tuple(k.value for k in ErrorKind if k is not ErrorKind.CRASH)  # what a child may report

# Automatic differentiation: only the processes of the network visualization units may import these
# packages; those of the numpy units, whose backward passes are written by hand, cannot reach them.
AUTODIFF = ("torch", "functorch", "torchgen", "jax", "jaxlib", "autograd", "tensorflow", "sympy")
NO_AUTODIFF = "PyTorch is not available to the numpy units: backward passes must be written by hand"


class CheckOrder(NamedTuple):
    """One check of a child's request (a JSON list on the way): its key in the answers, its title,
    its mode ("run", or ["own_gradient", *point]), time limit, output cap in bytes, and the unit
    functions it must skip (they hung before)."""
    key: int
    title: str
    mode: Any
    seconds: float
    cap: int
    skip: list
NUMERIC_KINDS = "biufc"
MAX_DIMS = 8


Wait = Callable[[int, "float | None"], bytes]  # FrameReader's wait(fd, deadline): the next bytes


class FrameError(Exception):
    """A frame that breaks the protocol or its limits."""


# ---------------------------------------------------------------- trees

def encode(value: Any) -> tuple[Any, list[np.ndarray]]:
    """(skeleton, arrays) of a tree of arrays, tuples, lists, text-keyed dicts and scalars."""
    arrays = []

    def walk(v: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise FrameError("value nested deeper than %d" % MAX_DEPTH)
        if isinstance(v, (np.ndarray, np.generic)):
            array = np.asarray(v)
            if array.dtype.kind not in NUMERIC_KINDS:
                raise FrameError("an array of %s cannot be sent" % array.dtype)
            arrays.append(array)
            return {"a": [array.dtype.str, list(array.shape)]}
        if isinstance(v, tuple):
            return {"t": [walk(x, depth + 1) for x in v]}
        if isinstance(v, list):
            return {"l": [walk(x, depth + 1) for x in v]}
        if isinstance(v, dict) and all(isinstance(k, str) for k in v):
            return {"d": {k: walk(x, depth + 1) for k, x in v.items()}}
        if v is None or isinstance(v, (bool, int, float, str)):
            return {"v": v}
        raise FrameError("a %s cannot be sent" % type(v).__name__)
    return walk(value, 0), arrays


def decode(skeleton: Any, payload: bytes | bytearray | memoryview) -> Any:
    """The tree a skeleton and its payload (a bytearray: the arrays are writable views of it) stand
    for; FrameError when they do not fit together."""
    count, offset = [0], [0]

    def array(spec: Any) -> np.ndarray:
        if not (isinstance(spec, list) and len(spec) == 2 and isinstance(spec[0], str) and len(spec[0]) < 16
                and isinstance(spec[1], list) and len(spec[1]) <= MAX_DIMS
                and all(type(n) is int and 0 <= n <= len(payload) + 1 for n in spec[1])):
            raise FrameError("malformed array")
        try:
            dtype = np.dtype(spec[0])
        except Exception:
            raise FrameError("unknown dtype") from None
        if dtype.kind not in NUMERIC_KINDS or dtype.shape or dtype.itemsize == 0:
            raise FrameError("arrays must hold booleans or numbers")
        size = 1
        for n in spec[1]:
            size *= n
        end = offset[0] + size * dtype.itemsize
        if end > len(payload):
            raise FrameError("arrays larger than the payload")
        data = np.frombuffer(payload, dtype, size, offset[0]).reshape(tuple(spec[1]))
        offset[0] = end
        return data

    def walk(node: Any, depth: int) -> Any:
        count[0] += 1
        if depth > MAX_DEPTH or count[0] > MAX_NODES or not isinstance(node, dict) or len(node) != 1:
            raise FrameError("malformed value")
        (kind, body), = node.items()
        if kind == "a":
            return array(body)
        if kind in ("t", "l") and isinstance(body, list):
            items = [walk(x, depth + 1) for x in body]
            return tuple(items) if kind == "t" else items
        if kind == "d" and isinstance(body, dict):
            return {k: walk(x, depth + 1) for k, x in body.items()}
        if kind == "v" and (body is None or isinstance(body, (bool, int, float, str))):
            # a string interned as the same literal in the checks' source is: `cell_type is 'rnn'`
            # sees in a hidden check what it sees in the notebook
            return sys.intern(body) if isinstance(body, str) else body
        raise FrameError("malformed value")
    try:
        value = walk(skeleton, 0)
    except FrameError:
        raise
    except Exception as exc:  # anything else a forged skeleton may trigger
        raise FrameError("malformed value: %s" % type(exc).__name__) from exc
    if offset[0] != len(payload):
        raise FrameError("payload longer than its arrays")
    return value


# ---------------------------------------------------------------- writing

def write_frame(fd: int, header: dict, value: Any = None) -> None:
    """Send header (a dict) and, when given, value as its tree."""
    payload = b""
    if value is not None:
        header["tree"], arrays = encode(value)
        payload = b"".join(a.tobytes() for a in arrays)
    header["size"] = len(payload)
    data = (json.dumps(header) + "\n").encode() + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def pack(value: Any) -> dict[str, Any]:
    """value as one frame in JSON-able form (its tree, its payload in base64): how the grader puts
    arrays in a child's request."""
    tree, arrays = encode(value)
    return {"tree": tree, "payload": base64.b64encode(b"".join(a.tobytes() for a in arrays)).decode()}


def unpack(packed: dict[str, Any]) -> Any:
    """The value of a pack()ed frame."""
    return decode(packed["tree"], bytearray(base64.b64decode(packed["payload"])))


# ---------------------------------------------------------------- reading

def blocking_read(fd: int, deadline: float | None) -> bytes:
    return os.read(fd, 1 << 20)


class FrameReader:
    """Reads frames from a file descriptor, with a wall-clock deadline per frame."""

    def __init__(self, fd: int, max_payload: int):
        self.fd, self.max_payload, self.buffer = fd, max_payload, bytearray()

    def _fill(self, deadline: float | None, wait: Wait) -> None:
        chunk = wait(self.fd, deadline)
        if not chunk:
            raise EOFError
        self.buffer += chunk

    def read(self, deadline: float | None = None, wait: Wait | None = None,
             limit: int | None = None) -> tuple[dict, Any]:
        """(header, value or None). wait(fd, deadline) returns the next bytes (b"" at end of file)
        or raises TimeoutError; by default a blocking read. limit: a smaller payload cap for this
        frame (refused from its header, before any of the payload is read)."""
        wait = wait or blocking_read
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_HEADER:
                raise FrameError("header longer than %d bytes" % MAX_HEADER)
            self._fill(deadline, wait)
        line, _, rest = bytes(self.buffer).partition(b"\n")
        if len(line) > MAX_HEADER:
            raise FrameError("header longer than %d bytes" % MAX_HEADER)
        try:
            header = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise FrameError("header is not JSON: %s" % type(exc).__name__) from exc
        if not isinstance(header, dict):
            raise FrameError("header is not an object")
        size, cap = header.get("size"), self.max_payload if limit is None else min(limit, self.max_payload)
        if type(size) is not int or not 0 <= size <= cap:
            raise FrameError("payload size %r outside 0..%d" % (size, cap))
        payload, got = bytearray(size), min(size, len(rest))  # the one copy of the payload, filled in place
        payload[:got], self.buffer = rest[:got], bytearray(rest[got:])
        while got < size:
            chunk = memoryview(wait(self.fd, deadline))
            if not chunk:
                raise EOFError
            take = min(size - got, len(chunk))
            payload[got:got + take], self.buffer = chunk[:take], bytearray(chunk[take:])
            got += take
        if "tree" not in header:
            return header, None
        return header, decode(header["tree"], payload)


def field(header: dict, name: str, kind: type, default: Any = None, limit: int = 2000) -> Any:
    """header[name] when it has the expected type (text cut to `limit`), else default."""
    value = header.get(name, default)
    if kind is str:
        return value[:limit] if isinstance(value, str) else default
    if kind is int:
        return value if type(value) is int else default
    if kind is list:
        return value if isinstance(value, list) else default
    if kind is dict:
        return value if isinstance(value, dict) else default
    return value if isinstance(value, kind) else default
