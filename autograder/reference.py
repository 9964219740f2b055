"""The trusted side of grading: the reference package, the check catalogue, expected values, limits.

The reference package is source/image_captioning/captioning, imported under its place in the
repository (`source.image_captioning.captioning`); its `checks` module is the check catalogue
(the public checks students get, and what hidden.py builds the hidden ones with). None of this
ever runs in, or is sent to, a sandboxed process but the public checks' source text.
"""
from __future__ import annotations

import functools
import importlib.util
import secrets
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import source.image_captioning.captioning as reference_package
from source.image_captioning.captioning import checks as catalogue

from .course import REFERENCE_PACKAGE
from .hidden import hidden_checks
from .sandbox import Limits
from .units import BY_NAME

CAP_FACTOR, MIN_CAP = 4, 64 * 1024  # an answer's bytes: at most CAP_FACTOR x the reference's, or MIN_CAP
TRAINED_CAP = 4 << 20               # a training check's answer (the trained parameters, < 1 MB as float64)

assert reference_package.__path__[0] == str(REFERENCE_PACKAGE), "course.py and the reference import disagree"


def checks_module() -> ModuleType:
    """The check catalogue (captioning/checks.py of the reference package)."""
    return catalogue


@functools.lru_cache(maxsize=None)
def reference_impl() -> Any:
    """The reference implementation, as the checks call it (checks.Impl)."""
    return catalogue.load_impl(reference_package)


def load_impl_from(package: Path, name: str) -> Any:
    """The Impl of the captioning package in folder `package` (another submission, a mistake's
    variant), imported under `name`: trusted kit code only, never a student's."""
    spec = importlib.util.spec_from_file_location(name, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return catalogue.load_impl(module)


def checks_for(seed: int) -> dict[str, Any]:
    """{title: Check}: the public checks, then the hidden ones built from seed, in that order (the
    titles, units and shapes are the same for every seed)."""
    checks = catalogue.PUBLIC_CHECKS + hidden_checks(catalogue, seed)
    by_title = {c.title: c for c in checks}
    assert len(by_title) == len(checks), "two checks share a title"
    return by_title


@functools.lru_cache(maxsize=None)
def all_checks() -> dict[str, Any]:
    """checks_for(0): what every seed's checks have in common (titles, units, limits, sizes)."""
    return checks_for(0)


def child_sources() -> dict[str, str]:
    """The trusted source texts every child needs: the public checks (no expected values, no
    reference code, no hidden checks)."""
    return {name: (REFERENCE_PACKAGE / (name + ".py")).read_text() for name in ("gradient_check", "checks")}


def oracle_sources() -> dict[str, str]:
    """The reference layers the oracle serves swapped functions from (each imports numpy only)."""
    names = ("layers.py", "rnn_layers.py", "transformer_layers.py")
    return {name: (REFERENCE_PACKAGE / name).read_text() for name in names}


# ---------------------------------------------------------------- time limits and sizes

def nbytes(outputs: dict[str, Any]) -> int:
    return sum(np.asarray(v).nbytes for v in outputs.values())


@functools.lru_cache(maxsize=None)
def reference_profile(title: str) -> tuple[float, int]:
    """(seconds, bytes of outputs) of a check's run on the reference, measured once in this process."""
    started = time.perf_counter()
    outputs = all_checks()[title].run(reference_impl())
    return time.perf_counter() - started, nbytes(outputs)


def limit_for(title: str, limits: Limits) -> float:
    """A check's time limit: the reference's own time times limits.check_factor, at least the
    least for its kind (gate, other, or training: a fixed limit)."""
    check = all_checks()[title]
    if BY_NAME[check.unit].training:
        return limits.train_seconds
    least = limits.gate_seconds if check.gate else limits.check_seconds
    return max(least, limits.check_factor * reference_profile(title)[0])


def cap_for(title: str, reference_bytes: int | None = None) -> int:
    """The most bytes a check's answer may take: CAP_FACTOR x the reference's (reference_bytes, by
    default its run's), at least MIN_CAP; TRAINED_CAP for a training check (not run here)."""
    if BY_NAME[all_checks()[title].unit].training:
        return TRAINED_CAP
    return max(MIN_CAP, CAP_FACTOR * (reference_profile(title)[1] if reference_bytes is None else reference_bytes))


# ---------------------------------------------------------------- expected values

class Expected:
    """A grade's expected values, computed with the reference when first asked for: once per
    process for a public check (the same every grade), once per grade for a hidden one (built
    from the grade's seed)."""
    _public: dict[str, Any] = {}

    def __init__(self, checks: dict[str, Any]):
        self.checks = checks
        self._hidden: dict[str, Any] = {}

    def __call__(self, title: str) -> Any:
        check = self.checks[title]
        cache = Expected._public if check.public else self._hidden
        if title not in cache:
            cache[title] = catalogue.expected_values(check, reference_impl())
        return cache[title]


@functools.lru_cache(maxsize=None)
def reference_forward(title: str) -> dict[str, Any]:
    """The reference forward's outputs on the (float64) inputs of a backward check."""
    layer, inputs, _ = all_checks()[title].backward_of
    return catalogue.forward_outputs(layer, reference_impl(), {k: v.astype("float64") for k, v in inputs.items()})


@functools.lru_cache(maxsize=None)
def own_gradient_bytes(title: str) -> int:
    """Bytes of the reference's answer to the own-gradient probe of a backward check (forward
    outputs and gradients): what the own-forward fallback's answers are capped by."""
    return nbytes(catalogue.own_gradient_probe(*all_checks()[title].backward_of)(reference_impl()))


def moved_points(title: str, per_input: int = 24) -> list[tuple[str, int, int]]:
    """The points (name, index, sign) at which the own-forward check moves a backward check's
    inputs: every element of an input of up to per_input elements, else per_input chosen at random."""
    layer, inputs, _ = all_checks()[title].backward_of
    pick = secrets.SystemRandom().sample
    return [(name, index, sign) for name in catalogue.grad_names(layer, inputs)
            for index in sorted(pick(range(inputs[name].size), min(per_input, inputs[name].size)))
            for sign in (1, -1)]
