"""`make bundle`: build autograder.zip for Gradescope's "Zip file upload" autograder.

Gradescope unzips it into /autograder/source, runs setup.sh once when building the image, then
runs /autograder/run_autograder (a copy of ours) for each submission, which grades
/autograder/submission and writes /autograder/results/results.json.

The zip holds: setup.sh, run_autograder, requirements-grader.txt (numpy pinned as in
requirements.txt: the grader and the student code need nothing else), the grader package
autograder/ and the trusted package source/image_captioning/captioning/ (the reference solution,
checks and given files; grade.py finds it next to autograder/). Nothing else: no tests, no
solutions/ notebooks, no .git.

Assumption: Gradescope runs run_autograder as root. run_autograder then makes /autograder/source
root-only (0700) before grading, so the sandbox's unprivileged children cannot read the grader,
hidden.py or the reference from disk, in addition to the mount namespace that covers those folders.
The venv lives in /autograder/venv and stays world-readable: the children run its python.

Environment overrides for testing run_autograder outside Gradescope:
  AUTOGRADER_ROOT (default /autograder), AUTOGRADER_PYTHON (default $AUTOGRADER_ROOT/venv/bin/python).
"""
import argparse
import re
import stat
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = ("autograder", "source/image_captioning/captioning")
GRADER_REQUIREMENTS = ("numpy",)

SETUP_SH = """#!/usr/bin/env bash
# Gradescope image setup: python3 + a venv with the pinned grader requirements.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-venv python3-pip
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet --upgrade pip
/autograder/venv/bin/pip install --quiet -r /autograder/source/requirements-grader.txt
chmod -R a+rX /autograder/venv
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Grade /autograder/submission into /autograder/results/results.json (Gradescope's contract).
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PY="${AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}"
SRC="$ROOT/source"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
if [ "$(id -u)" = 0 ]; then
    # The grader's files are root-only: sandboxed student code runs as throwaway unprivileged uids.
    chown -R 0:0 "$SRC" "$ROOT/results"
    chmod -R go-rwx "$SRC"
    chmod 0755 "$ROOT/results"
fi
cd "$SRC" || exit 1
"$PY" -m autograder "$ROOT/submission" --results "$RESULTS"
status=$?
if [ ! -s "$RESULTS" ]; then
    # The grader itself failed (status $status): never leave Gradescope without a results.json.
    printf '{"score": 0, "output": "The autograder failed (exit status %s); please tell the course staff.", "tests": []}\\n' "$status" > "$RESULTS"
fi
exit 0
"""


def pinned_requirements():
    """requirements-grader.txt: the GRADER_REQUIREMENTS lines of requirements.txt, pins kept."""
    lines = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name = re.split(r"[=<>~! \[;]", line.strip(), 1)[0].lower()
        if name in GRADER_REQUIREMENTS:
            lines.append(line.strip())
    missing = set(GRADER_REQUIREMENTS) - {re.split(r"[=<>~!]", l, 1)[0].lower() for l in lines}
    if missing:
        raise SystemExit("requirements.txt does not pin %s" % ", ".join(sorted(missing)))
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
        for folder in PACKAGE_DIRS:
            for path in sorted((ROOT / folder).rglob("*.py")):
                if "__pycache__" not in path.parts:
                    add_text(archive, path.relative_to(ROOT).as_posix(), path.read_text())
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
