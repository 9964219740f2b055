"""Name a common mistake at your desk: when a unit fails its public checks, `check("unit")` compares
your outputs with those of the course's typical mistakes of that unit on the same public inputs, and
when they match one (or several that share one hint), prints what it looks like and where to look.

The mistakes' outputs (fingerprints) are in hints.json, next to this file, written by the course's
release from the public checks only (their inputs and expected values are printed in the notebooks
already). The autograder says the same on its hidden checks too. A hint names a likely cause; it is
not a rule that your code must follow, and no hint does not mean no mistake.
"""
import contextlib
import functools
import io
import json
import os

import numpy as np

PREFIX = "This looks like a common mistake: "
FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hints.json")


def answer(check, impl):
    """A check's answer on impl: {key: array}, or [kind, message] of what went wrong ("exception":
    "Type: message"; "output": an output that is not a numeric array)."""
    try:
        with np.errstate(all="ignore"):
            outputs = check.run(impl)
    except Exception as exc:
        return ["exception", "%s: %s" % (type(exc).__name__, str(exc)[:500])]
    arrays = {}
    for key, value in outputs.items():
        array = np.asarray(value) if value is not None else None
        if array is None or array.dtype == object:
            return ["output", "%s is %s, not a numeric array" % (key, type(value).__name__)]
        arrays[str(key)] = array
    return arrays


def same(check, got, want):
    """Whether two answers agree under the check's own rule and tolerance (non-finite values exactly).
    The autograder compares with this very function."""
    from .checks import compare
    if not isinstance(got, dict) or not isinstance(want, dict):
        return list(got) == list(want) if not isinstance(got, dict) and not isinstance(want, dict) else False
    for key, value in want.items():
        if key not in got:
            return False
        a, b = np.asarray(got[key]), np.asarray(value)
        if check.compare != "tokens" and a.shape == b.shape and not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            if not np.array_equal(a, b, equal_nan=True):
                return False
        elif not compare(check, {key: a}, {key: b})[0]:
            return False
    return True


def stable_values(array):
    """A float array's values as every machine computes them: 12 significant digits (the tightest
    tolerance of a check is 1e-11), and 0 for rounding noise (below 1e-13 of the array's scale, as
    a gradient that is exactly zero comes out of another BLAS kernel as 2e-17 or 8e-17)."""
    floor = 1e-13 * max(1.0, float(np.max(np.abs(array), initial=0.0)))
    return [0.0 if abs(x) < floor else float("%.12g" % x) for x in array.ravel()]


def encode(found):
    """An answer as JSON data ("pass" stays "pass"), the same text on every machine."""
    if isinstance(found, dict):
        return {k: {"dtype": str(v.dtype), "shape": list(v.shape),
                    "values": stable_values(v) if v.dtype.kind == "f" else v.ravel().tolist()}
                for k, v in found.items()}
    return found


def decode(data):
    if isinstance(data, dict):
        return {k: np.array(v["values"], dtype=v["dtype"]).reshape(v["shape"]) for k, v in data.items()}
    return data


@functools.lru_cache(maxsize=None)
def fingerprints():
    """{unit: {mistake id: {"hint": text, "checks": {check name: answer or "pass"}}}}, or {} when
    hints.json is not there (the course's source folder)."""
    try:
        with open(FILE) as f:
            return json.load(f)["units"]
    except (OSError, ValueError, KeyError):
        return {}


def diagnose(unit, impl, results):
    """The hint for a unit's public check results [(check, passed, ...)] on impl, or None: the
    mistakes that fail every check you fail with your very outputs, and pass those you pass, must
    all share one hint."""
    mistakes = fingerprints().get(unit, {})
    if not mistakes or all(passed for _, passed, *_ in results):
        return None
    with contextlib.redirect_stdout(io.StringIO()):  # what your code prints was shown once already
        answers = {c.name: answer(c, impl) for c, passed, *_ in results if not passed}
    found = set()
    for data in mistakes.values():
        known = data["checks"]
        if all(c.name in known and (known[c.name] == "pass" if passed else
                                    known[c.name] != "pass" and same(c, answers[c.name], decode(known[c.name])))
               for c, passed, *_ in results):
            found.add(data["hint"])
    return found.pop() if len(found) == 1 else None
