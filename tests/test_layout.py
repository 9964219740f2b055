"""The grader's floors (README, Development): every import in autograder/, function bodies
included, goes to its own floor or a lower one, so the import graph has no circle and nothing runs
back up; the front ends sit above grade.py."""
import ast

from autograder import syntax
from autograder.course import ROOT

FLOORS = {
    1: ("course", "units", "text", "syntax", "inside", "inside.frames", "mistakes"),
    2: ("intake", "sandbox", "hidden", "netviz_hidden"),
    3: ("reference",),
    4: ("results", "rules", "diagnosis"),
    5: ("grade",),
    6: ("report",),
    7: ("front", "front.cli", "front.batch", "front.cluster", "front.similarity", "front.nbgrader",
        "front.conftest", "front.test_checks", "__main__"),
}
FLOOR_OF = {module: floor for floor, modules in FLOORS.items() for module in modules}
SANDBOXED = ("inside/child.py", "inside/oracle.py")  # run as scripts in the sandbox: they import frames by path


def modules():
    """{module name relative to autograder: path} of every file of the grader."""
    base = ROOT / "autograder"
    found = {}
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(base).with_suffix("").parts
        if "__pycache__" not in parts and path.relative_to(base).as_posix() not in SANDBOXED:
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name, path):
    """The grader modules that module `name` imports (relative or absolute), anywhere in it."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(syntax.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + (node.module.split(".") if node.module else []))
            elif node.module and node.module.split(".")[0] == "autograder":
                target = node.module.removeprefix("autograder").lstrip(".")
            else:
                continue
            for alias in node.names:  # `from . import reference` names a module, `from .x import f` a name
                module = ".".join(filter(None, [target, alias.name]))
                found.add(module if module in FLOOR_OF else target)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("autograder.") for a in node.names if a.name.startswith("autograder.")}
    return found - {""}


def test_every_module_has_a_floor():
    assert set(modules()) <= set(FLOOR_OF) | {""}, set(modules()) - set(FLOOR_OF)


def test_imports_never_run_back_up():
    upward = []
    for name, path in modules().items():
        if not name:
            continue
        for target in imports(name, path):
            assert target in FLOOR_OF, "%s imports %s, which has no floor" % (name, target)
            if FLOOR_OF[target] > FLOOR_OF[name]:
                upward.append("%s (floor %d) imports %s (floor %d)" % (name, FLOOR_OF[name], target,
                                                                        FLOOR_OF[target]))
    assert not upward, upward


def test_no_import_circle():
    graph = {name: imports(name, path) for name, path in modules().items() if name}
    visiting, done = set(), set()

    def visit(node, trail):
        assert node not in visiting, "import circle: " + " -> ".join(trail + [node])
        if node in done:
            return
        visiting.add(node)
        for target in sorted(graph.get(node, ())):
            visit(target, trail + [node])
        visiting.discard(node)
        done.add(node)
    for name in graph:
        visit(name, [])


def test_the_check_catalogue_is_an_import_the_graph_shows():
    tree = syntax.parse((ROOT / "autograder" / "reference.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "source.image_captioning.captioning" in imported  # `from ... import checks as catalogue`
    from autograder import reference
    assert reference.reference_package.__name__ == "source.image_captioning.captioning"  # not loaded by path
    assert reference.checks_module().__name__ == "source.image_captioning.captioning.checks"


def test_every_parse_of_the_kits_own_files_takes_syntax_parses_lock():
    """ast.parse called from two threads at once fails on CPython 3.11 (autograder/syntax.py): the
    grader's, the tools' and the tests' threads parse through syntax.parse only."""
    needle = "ast." + "parse("
    callers = [str(p.relative_to(ROOT)) for folder in ("autograder", "tools", "tests", "bench")
               for p in sorted((ROOT / folder).rglob("*.py")) if needle in p.read_text()]
    assert callers == ["autograder/syntax.py"], callers
