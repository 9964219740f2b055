"""`make release` (tools/release.py): reproducible, leak-free, points in sync, loud on failure.

Anything that runs the release works on a temporary copy of the repo.
"""
import ast
import importlib
import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograder import syntax
from autograder.course import student_modules
from autograder.front.nbgrader import SyncUnitPoints
from autograder.units import UNITS
from tests.conftest import OTHER_BLAS, STALE, repo_copy
from tools.release import ASSIGNMENT, MARKERS

ROOT = Path(__file__).resolve().parents[1]

SOURCE, RELEASE, SOLUTIONS = (ROOT / d / ASSIGNMENT for d in ("source", "release", "solutions"))
BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"


def tree(directory):
    """{relative path: bytes} of every file under directory, caches left out."""
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def run_release(repo):
    return subprocess.run([sys.executable, "-m", "tools.release"], cwd=repo, capture_output=True,
                          text=True, env=dict(os.environ, **OTHER_BLAS))


def regions(text):
    """(index, line, inside a solution region) for each non-marker line of text."""
    inside = False
    for i, line in enumerate(text.split("\n")):
        if BEGIN in line or END in line:
            inside = BEGIN in line
        else:
            yield i, line, inside


def source_texts():
    """{name: text} of every source module and of every notebook cell."""
    texts = {str(p): p.read_text() for p in sorted(SOURCE.rglob("*.py"))}
    for path in sorted(SOURCE.glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            texts[f"{path.name}[{i}]"] = cell.source
    return texts


@pytest.fixture(scope="module")
def fresh(released_course):
    """A repo copy released once more under OTHER_BLAS, with STALE files planted first (conftest's
    released_course); source/ must not change."""
    printed = (released_course / "release.out").read_text()
    assert printed.startswith("release: ") and printed.count("\n") == 1, printed
    assert tree(released_course / "source") == tree(ROOT / "source")
    assert not [out for out, rel in STALE.items() if (released_course / out / ASSIGNMENT / rel).exists()]
    return released_course


@pytest.mark.slow
def test_release_reproduces_the_committed_files(fresh):
    for out in ("release", "solutions"):
        assert tree(fresh / out / ASSIGNMENT) == tree(ROOT / out / ASSIGNMENT), f"{out}/ is stale"
        assert not [p for p in (ROOT / out / ASSIGNMENT).rglob("*")
                    if p.is_file() and p.stat().st_mode & 0o111], f"executable file in {out}/"


@pytest.mark.slow
def test_release_carries_unit_points(fresh):
    for path in (RELEASE, fresh / "release" / ASSIGNMENT):
        cells = {(nb.name, c.metadata.nbgrader["grade_id"]): c.metadata.nbgrader["points"]
                 for nb in sorted(path.glob("*.ipynb"))
                 for c in nbformat.read(nb, as_version=4).cells
                 if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata.nbgrader["solution"]}
        assert cells == {(u.notebook, u.grade_id): u.points for u in UNITS}
    with sqlite3.connect(fresh / "gradebook.db") as db:
        rows = db.execute("SELECT n.name, b.name, g.max_score FROM grade_cells g JOIN base_cell b "
                          "ON g.id = b.id JOIN notebook n ON b.notebook_id = n.id").fetchall()
    units = {(u.notebook[:-len(".ipynb")], u.grade_id): u.points for u in UNITS}
    assert {(nb, gid): score for nb, gid, score in rows if (nb, gid) in units} == units


def test_sync_unit_points_rejects_unknown_units_and_adds_missing_ones():
    def notebook(*grade_ids):
        cells = [nbformat.v4.new_code_cell("pass", metadata={"nbgrader": {
            "grade": True, "solution": False, "grade_id": gid, "points": 0}}) for gid in grade_ids]
        return nbformat.v4.new_notebook(cells=cells)
    name = UNITS[0].notebook
    resources = {"nbgrader": {"notebook": name[:-len(".ipynb")]}}
    ids = [u.grade_id for u in UNITS if u.notebook == name]
    nb, _ = SyncUnitPoints().preprocess(notebook(*ids), resources)
    assert [c.metadata.nbgrader["points"] for c in nb.cells] == [
        u.points for u in UNITS if u.notebook == name]
    with pytest.raises(ValueError, match="not a unit"):
        SyncUnitPoints().preprocess(notebook(*ids, "bogus"), resources)
    nb, _ = SyncUnitPoints().preprocess(notebook(*ids[1:]), resources)  # the first unit's cell is missing
    added = nb.cells[-1]
    assert added.source == 'check("%s")' % UNITS[0].name and added.metadata.nbgrader["grade_id"] == ids[0]
    assert added.metadata.nbgrader["points"] == UNITS[0].points and added.metadata.nbgrader["locked"]


def test_release_holds_no_marker_and_no_solution_line():
    lines = [(line.strip(), inside) for text in source_texts().values() for _, line, inside in regions(text)]
    secret = {line for line, inside in lines if inside and len(line) > 8 and not line.startswith("#")}
    secret -= {line for line, inside in lines if not inside}  # also written outside any solution
    assert secret, "no solution lines found in source"
    for path in sorted(p for p in RELEASE.rglob("*") if p.is_file()):
        raw = path.read_text(errors="replace")
        assert not [m for m in MARKERS if m in raw], path
        text = raw
        if path.suffix == ".ipynb":
            text = "\n".join(c.source for c in nbformat.reads(raw, as_version=4).cells)
        leaked = sorted(secret & {line.strip() for line in text.split("\n")})
        assert not leaked, f"{path.relative_to(ROOT)} leaks {leaked[:3]}"


def student_functions():
    """(module, qualified name) of every function holding a solution region in source."""
    found = []
    for rel in student_modules(SOURCE):
        lines = (SOURCE / rel).read_text().split("\n")
        module = ".".join(Path(rel).relative_to("captioning").with_suffix("").parts)
        for node in ast.walk(syntax.parse("\n".join(lines))):
            for fn in getattr(node, "body", []):
                if isinstance(fn, ast.FunctionDef) and any(
                        BEGIN in line for line in lines[fn.lineno - 1:fn.end_lineno]):
                    owner = [node.name] if isinstance(node, ast.ClassDef) else []
                    found.append((module, ".".join(owner + [fn.name])))
    return found


def load_package(assignment_dir, alias):
    """Import assignment_dir/captioning as `alias` (its imports are relative)."""
    init = assignment_dir / "captioning" / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        alias, init, submodule_search_locations=[str(init.parent)])
    sys.modules[alias] = package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)


N, T, D, H, V, E = 2, 3, 4, 5, 6, 8
WORDS = {w: i for i, w in enumerate(["<NULL>", "<START>", "<END>", "cat", "dog", "sits"])}


def targets(pkg, module, name):
    """The callables name stands for in package pkg (a model method: one per cell type)."""
    mod = importlib.import_module(f"{pkg}.{module}")
    if "." not in name:
        return [getattr(mod, name)]
    cls, method = name.split(".")
    if cls == "CaptioningTransformer":
        return [getattr(getattr(mod, cls)(WORDS, input_dim=D, wordvec_dim=E, num_heads=2, num_layers=1,
                                          dtype=np.float64), method)]
    return [getattr(getattr(mod, cls)(WORDS, input_dim=D, wordvec_dim=7, hidden_dim=H,
                                      cell_type=cell, dtype=np.float64), method)
            for cell in ("rnn", "lstm")]


def layer_params(rng, prefixes=("",), F=6):
    """Random parameters of an attention (prefixes ("",)) or of a decoder layer."""
    params = {}
    for prefix in prefixes:
        params.update({prefix + k: rng.standard_normal((E, E)) for k in ("Wq", "Wk", "Wv", "Wo")})
        params.update({prefix + k: rng.standard_normal(E) for k in ("bq", "bk", "bv", "bo")})
    if prefixes != ("",):
        params.update({ln + s: rng.standard_normal(E) for ln in ("ln1", "ln2", "ln3") for s in ("_gamma", "_beta")})
        params.update(W1=rng.standard_normal((E, F)), b1=rng.standard_normal(F), W2=rng.standard_normal((F, E)),
                      b2=rng.standard_normal(E))
    return params


def torch_model_inputs(rng):
    """(X, y, model) for the network visualization's functions: images, labels and a small CNN."""
    import torch
    X = torch.tensor(rng.standard_normal((2, 3, 8, 8)), dtype=torch.float32)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
    return X, torch.tensor([0, 1]), model


def arguments(pkg, module, name, rng):
    """Well-shaped arguments for name; a backward pass gets ones as upstream gradients and the
    cache of pkg's own forward pass."""
    r = rng.standard_normal
    if name.endswith("backward"):
        forward = name.replace("backward", "forward")
        *outs, cache = targets(pkg, module, forward)[0](*arguments(pkg, module, forward, rng))
        return (*(np.ones_like(o) for o in outs), cache)
    known = {
        "rnn_step_forward": lambda: (r((N, D)), r((N, H)), r((D, H)), r((H, H)), r(H)),
        "rnn_forward": lambda: (r((N, T, D)), r((N, H)), r((D, H)), r((H, H)), r(H)),
        "word_embedding_forward": lambda: (rng.integers(0, V, (N, T)), r((V, D))),
        "lstm_step_forward": lambda: (r((N, D)), r((N, H)), r((N, H)), r((D, 4 * H)),
                                      r((H, 4 * H)), r(4 * H)),
        "lstm_forward": lambda: (r((N, T, D)), r((N, H)), r((D, 4 * H)), r((H, 4 * H)), r(4 * H)),
        "CaptioningRNN.loss": lambda: (r((N, D)), rng.integers(0, V, (N, T + 1))),
        "CaptioningRNN.sample": lambda: (r((N, D)), T),
        "CaptioningRNN.beam_search": lambda: (r((N, D)), T, 3),
        "positional_encoding": lambda: (T, E),
        "multihead_attention_forward": lambda: (r((N, T, E)), r((N, 2, E)), r((N, 2, E)), layer_params(rng), 2,
                                                np.tril(np.ones((T, 2), dtype=bool))),
        "decoder_layer_forward": lambda: (r((N, T, E)), r((N, 1, E)), layer_params(rng, ("self_", "cross_")), 2,
                                          np.tril(np.ones((T, T), dtype=bool))),
        "CaptioningTransformer.loss": lambda: (r((N, D)), rng.integers(0, V, (N, T + 1))),
        "CaptioningTransformer.sample": lambda: (r((N, D)), T),
        "CaptioningTransformer.beam_search": lambda: (r((N, D)), T, 3),
        "compute_saliency_maps": lambda: torch_model_inputs(rng),
        "make_fooling_image": lambda: (torch_model_inputs(rng)[0][:1], 1, torch_model_inputs(rng)[2]),
        "class_visualization_update_step": lambda: (torch_model_inputs(rng)[0][:1].requires_grad_(),
                                                    torch_model_inputs(rng)[2], 1, 1e-3, 1.0),
    }
    assert name in known, f"tests/test_release.py: give call arguments for {module}.{name}"
    return known[name]()


def test_every_released_student_function_raises_not_implemented():
    functions = student_functions()
    assert len(functions) >= 12, functions
    rng, args = np.random.default_rng(0), {}
    try:
        load_package(SOLUTIONS, "answer_key")
        for module, name in functions:
            args[name] = arguments("answer_key", module, name, rng)
            for fn in targets("answer_key", module, name):
                fn(*args[name])  # the arguments suit the real thing
        load_package(RELEASE, "student_version")
        for module, name in functions:
            for fn in targets("student_version", module, name):
                with pytest.raises(NotImplementedError):
                    fn(*args[name])
    finally:
        for key in [k for k in sys.modules if k.split(".")[0] in ("answer_key", "student_version")]:
            del sys.modules[key]


def assert_failed_cleanly(proc, repo, *needles):
    """One error line naming the problem; release/ and solutions/ left as committed."""
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("release failed: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    for out in ("release", "solutions"):
        assert tree(repo / out) == tree(ROOT / out)


@pytest.mark.slow
def test_unterminated_solution_region_fails_the_release(tmp_path):
    """The post-convert hook raises; nbgrader only logs that and exits 0, the release fails."""
    repo = repo_copy(tmp_path)
    module = repo / "source" / ASSIGNMENT / student_modules(SOURCE)[0]
    lines = module.read_text().split("\n")
    del lines[max(i for i, line in enumerate(lines) if END in line)]
    module.write_text("\n".join(lines))
    assert_failed_cleanly(run_release(repo), repo, "hook failed", "no end solution statement found",
                          f"release/{ASSIGNMENT}/{student_modules(SOURCE)[0]}")


def test_nested_notebook_fails_the_release(tmp_path):
    repo = repo_copy(tmp_path)
    shutil.copy(next(SOURCE.glob("*.ipynb")), repo / "source" / ASSIGNMENT / "captioning" / "x.ipynb")
    assert_failed_cleanly(run_release(repo), repo, "top-level notebooks", "x.ipynb")


def edit_first_solution_line(text):
    """text with its first non-blank solution line changed."""
    lines = text.split("\n")
    i = next(i for i, line, inside in regions(text) if inside and line.strip())
    lines[i] += "  # staff edit"
    return "\n".join(lines)


@pytest.mark.slow
def test_staff_edit_of_a_solution_shows_only_in_that_line_of_the_answer_key(fresh, tmp_path):
    repo = repo_copy(tmp_path)
    rel = student_modules(SOURCE)[0]
    src = repo / "source" / ASSIGNMENT / rel
    src.write_text(edit_first_solution_line(src.read_text()))
    notebook = next((p for p in sorted(SOURCE.glob("*.ipynb")) if BEGIN in p.read_text()), None)
    if notebook:
        nb = nbformat.read(notebook, as_version=4)
        cell = next(c for c in nb.cells if BEGIN in c.source)
        cell.source = edit_first_solution_line(cell.source)
        nbformat.write(nb, repo / "source" / ASSIGNMENT / notebook.name)
    assert run_release(repo).returncode == 0

    assert tree(repo / "release" / ASSIGNMENT) == tree(fresh / "release" / ASSIGNMENT)
    before, after = tree(fresh / "solutions" / ASSIGNMENT), tree(repo / "solutions" / ASSIGNMENT)
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == sorted([rel] + ([notebook.name] if notebook else []))
    old, new = before[rel].decode().split("\n"), after[rel].decode().split("\n")
    diff = [(o, n) for o, n in zip(old, new) if o != n]
    assert len(old) == len(new) and len(diff) == 1 and diff[0][1] == diff[0][0] + "  # staff edit"
    if notebook:
        old_nb, new_nb = (json.loads(t[notebook.name]) for t in (before, after))
        diff = [(a, b) for a, b in zip(old_nb["cells"], new_nb["cells"]) if a != b]
        assert len(diff) == 1 and {k for k in diff[0][0] if diff[0][0][k] != diff[0][1][k]} == {"source"}
