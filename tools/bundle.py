"""`make bundle`: build autograder.zip for Gradescope's "Zip file upload" autograder.

Gradescope unzips it into /autograder/source, runs setup.sh once when building the image, then
runs /autograder/run_autograder (a copy of ours) for each submission, which grades
/autograder/submission and writes /autograder/results/results.json.

The zip holds setup.sh, run_autograder, requirements-grader.txt, the grader: the core of
autograder/ plus its command-line front end (front/cli.py and its batch subcommand; the cluster,
similarity, nbgrader and pytest front ends serve staff machines), and the trusted package
source/image_captioning/captioning/ (reference solution, checks, given files; reference.py imports
it from next to autograder/). No tests, solutions/, notebooks or .git.

requirements-grader.txt is derived, not listed by hand: the distributions providing every
third-party import in the bundled files (function bodies included), with their dependencies,
pinned exactly as in requirements.txt. setup.sh installs python3,
python3-venv and bubblewrap with apt-get when they are missing, builds $AUTOGRADER_ROOT/venv
(default /autograder/venv) from the system python3, installs requirements-grader.txt (wheels
only) and checks that the grader imports.

run_autograder deletes any old results.json, grades, and writes a score-0 results.json if the
grader wrote none. It accepts the sandbox's container mode (Gradescope's Docker refuses the
namespaces bubblewrap needs; the container is then the outer boundary) and says so in the output
of every results.json. Gradescope runs it as root; it then makes the source folder root-only (0700)
so nothing but the grader can read the grader or the solution from disk. The sandbox makes its own
readable copies of what its processes need, and binds the venv (world-readable) where they find
it, whatever the modes of the folders above it.

Environment overrides for running outside Gradescope: AUTOGRADER_ROOT (default /autograder) for
both scripts; AUTOGRADER_BASE_PYTHON (default the system python3) and TORCH_INDEX_URL (default
PyTorch's CPU-only index; empty: pip's own) for setup.sh; AUTOGRADER_PYTHON (default
$AUTOGRADER_ROOT/venv/bin/python) for run_autograder.
"""
import argparse
import ast
import re
import stat
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from autograder import syntax
from autograder.course import REFERENCE_PACKAGE

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = ("autograder", REFERENCE_PACKAGE.relative_to(ROOT).as_posix())
FRONT_ENDS = Path("autograder", "front")
# Gradescope runs python -m autograder; its batch subcommand grades a folder of submissions
CLI = (FRONT_ENDS / "__init__.py", FRONT_ENDS / "cli.py", FRONT_ENDS / "batch.py")
# Given code only students run (the caption metrics, the submit command): bundled, as the release has
# it, but the grader never imports it, so what it imports (pycocoevalcap, ~100 MB; nbconvert) is not installed.
NOTEBOOK_ONLY = tuple(REFERENCE_PACKAGE.relative_to(ROOT).as_posix() + "/" + name
                      for name in ("evaluate.py", "submit.py"))


TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # PyTorch's CPU-only wheels (also the release's)
SETUP_SH = """#!/usr/bin/env bash
# Gradescope image setup: system packages, then $ROOT/venv with the pinned grader requirements.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
system_python() { if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3 || true; fi; }
PY="${AUTOGRADER_BASE_PYTHON:-$(system_python)}"
missing=()
[ -n "$PY" ] || missing+=(python3)
{ [ -n "$PY" ] && "$PY" -m ensurepip --version >/dev/null 2>&1; } || missing+=(python3-venv)
command -v bwrap >/dev/null || missing+=(bubblewrap)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    PY="${AUTOGRADER_BASE_PYTHON:-$(system_python)}"
fi
"$PY" -m venv --clear "$ROOT/venv"
# PyTorch's CPU-only wheels come from its own index (PyPI's x86_64 torch is the CUDA build, several GB,
# with the same version number: the index's 2.13.0+cpu wins). TORCH_INDEX_URL= (empty) skips it, for a
# machine whose pip already finds CPU wheels.
TORCH_INDEX_URL="${TORCH_INDEX_URL-@TORCH_CPU_INDEX@}"
extra=()
if [ -n "$TORCH_INDEX_URL" ]; then extra=(--extra-index-url "$TORCH_INDEX_URL"); fi
"$ROOT/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --only-binary=:all: \\
    "${extra[@]}" -r "$ROOT/source/requirements-grader.txt"
# Fail the image build, not every submission, when the grader cannot import.
(cd "$ROOT/source" && "$ROOT/venv/bin/python" -B -c "import autograder.grade")
chmod -R a+rX "$ROOT/venv"
""".replace("@TORCH_CPU_INDEX@", TORCH_CPU_INDEX)

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Grade /autograder/submission into /autograder/results/results.json (Gradescope's contract).
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PY="${AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}"
SRC="$ROOT/source"
RESULTS="$ROOT/results/results.json"
umask 022
mkdir -p "$ROOT/results"
rm -f "$RESULTS"  # a grader crash must never leave an older score in place
if [ "$(id -u)" = 0 ]; then
    # The grader's files are root-only: sandboxed student code runs as throwaway unprivileged uids.
    chown -R 0:0 "$SRC" "$ROOT/results"
    chmod -R go-rwx "$SRC"
    chmod 0755 "$ROOT/results"
fi
cd "$SRC" || exit 1
# Gradescope's Docker refuses namespaces: grade in container mode there (bubblewrap where it works),
# and stop well inside Gradescope's default 10-minute limit so a results.json is always written.
"$PY" -m autograder "$ROOT/submission" --results "$RESULTS" --min-isolation container --submission-seconds 420
status=$?
if [ ! -s "$RESULTS" ]; then
    # The grader itself failed (status $status): never leave Gradescope without a results.json.
    message="The autograder failed (exit status $status); please tell the course staff."
    printf '{"score": 0, "output": "%s", "tests": []}\\n' "$message" > "$RESULTS"
fi
exit 0
"""


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def bundled_files():
    """The .py files of PACKAGE_DIRS, of the front ends only the CLI; repository-relative, sorted."""
    files = [path.relative_to(ROOT) for folder in PACKAGE_DIRS for path in sorted((ROOT / folder).rglob("*.py"))
             if "__pycache__" not in path.parts]
    return [f for f in files if FRONT_ENDS not in f.parents or f in CLI]


def third_party_imports(sources, local):
    """Top-level names imported anywhere in the source texts (function bodies too) that are neither
    standard library nor in local."""
    names = set()
    for source in sources:
        for node in ast.walk(syntax.parse(source)):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return sorted(names - set(local) - set(sys.stdlib_module_names))


def grader_distributions():
    """Canonical names of the distributions providing the third-party imports of the bundled files,
    with their dependencies, as installed in this venv."""
    files = [f for f in bundled_files() if f.as_posix() not in NOTEBOOK_ONLY]
    local = {Path(folder).parts[i] for folder in PACKAGE_DIRS for i in (0, -1)} | {f.stem for f in files}
    return distributions("the grader", third_party_imports([(ROOT / f).read_text() for f in files], local))


def distributions(who, imports, extra=()):
    """Canonical names of the distributions providing the imports, plus extra, with their
    dependencies, as installed in this venv: those of the extras asked for too (Jupyter asks for
    jsonschema[format-nongpl]), which pip would otherwise install unpinned."""
    from packaging.requirements import Requirement  # packaging is pinned in requirements.txt

    owners = metadata.packages_distributions()
    unknown = [name for name in imports if name not in owners]
    if unknown:
        raise SystemExit("%s imports %s, which no installed distribution provides" % (who, ", ".join(unknown)))
    todo = {(canonical(d), "") for name in imports for d in owners[name]} | {(canonical(d), "") for d in extra}
    done = set()
    while todo:
        dist, wanted_extra = todo.pop()
        done.add((dist, wanted_extra))
        for line in metadata.requires(dist) or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": wanted_extra}):
                name = canonical(requirement.name)
                todo |= {(name, e) for e in ("", *requirement.extras)} - done
    return sorted({dist for dist, _ in done})


def pinned_requirements(wanted=None, who="the grader"):
    """The requirements.txt lines of the wanted distributions (default: the grader's), pins kept."""
    wanted = set(grader_distributions() if wanted is None else wanted)
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
             if canonical(re.split(r"[=<>~! \[;]", line.strip(), maxsplit=1)[0]) in wanted]
    pinned = {canonical(line.split("==", 1)[0]) for line in lines if "==" in line}
    if wanted - pinned:
        raise SystemExit("requirements.txt does not pin %s (==) for %s" % (", ".join(sorted(wanted - pinned)), who))
    return "\n".join(lines) + "\n"


def add_text(archive, name, text, executable=False):
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, text)


def build(out):
    """Write the bundle to out; the list of names in it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name("." + out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        add_text(archive, "setup.sh", SETUP_SH, executable=True)
        add_text(archive, "run_autograder", RUN_AUTOGRADER, executable=True)
        add_text(archive, "requirements-grader.txt", pinned_requirements())
        for path in bundled_files():
            add_text(archive, path.as_posix(), (ROOT / path).read_text())
        names = archive.namelist()
    tmp.replace(out)
    return names


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.bundle", description="build Gradescope's autograder.zip")
    parser.add_argument("--out", default=str(ROOT / "autograder.zip"))
    args = parser.parse_args(argv)
    names = build(args.out)
    print("wrote %s (%d files)" % (args.out, len(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
