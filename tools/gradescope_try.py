"""`make gradescope-try SUBMISSION=DIR_OR_ZIP`: try the Gradescope bundle as Gradescope runs it,
before uploading it.

It builds autograder.zip, unzips it into a fresh root laid out like Gradescope's /autograder, runs
the bundle's own setup.sh there (Gradescope's image build), then its run_autograder on the
submission inside a box shaped like Gradescope's container (tools/gradescope_box.py: 768 MB, half a
CPU, namespaces refused), and prints the score, the time, the box's peak memory and its
out-of-memory kills, the start of the output students read, and where results.json is. Needs root
(cgroups, a private mount namespace) with capsh and python3-seccomp (`make container-tools`).
tests/test_bundle.py grades through the same functions.
"""
import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from tools.bundle import build
from tools.gradescope_box import Container, MiB

ROOT = Path(__file__).resolve().parent.parent


def clean_env(root, **overrides):
    """This environment without anything pointing at the kit's venv, for a bundle rooted at root."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("AUTOGRADER_PYTHON", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
                                  if p and not p.startswith(str(ROOT)))
    env["AUTOGRADER_ROOT"] = str(root)
    return dict(env, **overrides)


def build_image(root, bundle, env):
    """Unzip the bundle into root/source and run its setup.sh there; the setup's output. root and
    the folder above it are left open (0755), as Gradescope's / is."""
    root.mkdir(parents=True)
    for folder in (root.parent, root):
        folder.chmod(0o755)
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(root / "source")
    proc = subprocess.run(["bash", str(root / "source" / "setup.sh")], env=env, cwd=root / "source",
                          capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        raise RuntimeError("setup.sh failed (exit %d):\n%s" % (proc.returncode, (proc.stdout + proc.stderr)[-3000:]))
    return proc.stdout + proc.stderr


def cached_image(images, bundle, env):
    """The bundle set up as Gradescope's image in images/, kept for the next try of the same bundle
    (its bytes, TORCH_INDEX_URL and AUTOGRADER_BASE_PYTHON): set up at most once, under a lock, by
    whichever process asks first; an image of another bundle is removed. (its root, the setup's
    log, whether it was set up now)"""
    key = hashlib.sha256(Path(bundle).read_bytes())
    for name in ("TORCH_INDEX_URL", "AUTOGRADER_BASE_PYTHON"):
        key.update(("\0%s=%s" % (name, env.get(name))).encode())
    folder = Path(images) / key.hexdigest()[:16]
    root = folder / "autograder"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built_now = not (folder / "setup.log").exists()
        if built_now:
            for old in folder.parent.iterdir():
                if old.is_dir():
                    shutil.rmtree(old)
            log = build_image(root, bundle, dict(env, AUTOGRADER_ROOT=str(root)))
            (folder / "setup.log").write_text(log)
    return root, (folder / "setup.log").read_text(), built_now


def link_or_copy(source, target):
    """A hard link where both are on one file system (a venv of a GB in no time), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def run_autograder(image, folder, submission, env, box=None, prepare=None):
    """A fresh container of the image in folder/autograder: the submission in place (None: an empty
    upload), prepare(root) if given, run_autograder run (inside box when given); (results.json's
    text, the process)."""
    root = folder / "autograder"
    shutil.copytree(image / "source", root / "source")
    shutil.copytree(image / "venv", root / "venv", symlinks=True, copy_function=link_or_copy)
    root.chmod(0o755)
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    os.chmod(root / "run_autograder", 0o755)
    if submission is None:
        (root / "submission").mkdir()
    elif Path(submission).is_dir():
        shutil.copytree(submission, root / "submission")
    else:  # a file, as Gradescope stores one uploaded file
        (root / "submission").mkdir()
        shutil.copy(submission, root / "submission")
    if prepare:
        prepare(root)
    argv, env = [str(root / "run_autograder")], dict(env, AUTOGRADER_ROOT=str(root))
    if box:
        argv, env = box.command(argv), box.env(env)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, cwd=folder)
    results = root / "results" / "results.json"
    return (results.read_text() if results.exists() else ""), proc


def main(argv=None):
    parser = argparse.ArgumentParser(prog="make gradescope-try SUBMISSION=...", description=__doc__.split("\n\n")[0])
    parser.add_argument("submission", type=Path, help="a folder or a zip, as a student uploads it")
    parser.add_argument("--memory", type=int, default=768, help="the box's memory in MB (Gradescope's default: 768)")
    parser.add_argument("--cpus", type=float, default=0.5, help="the box's CPUs (Gradescope's default: 0.5)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gradescope-try",
                        help="where results.json and the setup's log are kept")
    parser.add_argument("--images", type=Path, default=ROOT / "build" / "gradescope-images",
                        help="where the set-up image is kept for the next try of the same bundle")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("gradescope-try: needs root (a box with its own cgroups and mount namespace)")
    if not args.submission.exists():
        raise SystemExit("gradescope-try: no such submission: %s" % args.submission)
    with tempfile.TemporaryDirectory(prefix="kit-gradescope-try-") as tmp:
        tmp = Path(tmp)
        tmp.chmod(0o755)  # sandboxed uids reach the venv by its path, as on Gradescope
        started = time.monotonic()
        bundle = tmp / "autograder.zip"
        build(bundle)
        image, setup_log, built_now = cached_image(args.images, bundle, clean_env(args.images))
        done = ("set it up as Gradescope's image, kept in %s for the next try" if built_now
                else "its image is set up already, in %s") % image.parent
        print("built %s; %s (%.0f s)" % (bundle.name, done, time.monotonic() - started))
        box = Container(memory=args.memory * MiB, cpus=args.cpus)
        try:
            started = time.monotonic()
            text, proc = run_autograder(image, tmp / "container", args.submission.resolve(), clean_env(image), box)
            seconds, peak, kills = time.monotonic() - started, box.peak_mb, box.oom_kills
        finally:
            box.close()
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "setup.log").write_text(setup_log)
        (args.out / "run_autograder.log").write_text(proc.stdout + proc.stderr)
        (args.out / "results.json").write_text(text)
    document = json.loads(text) if text else {}
    possible = sum(t.get("max_score", 0) for t in document.get("tests", []))
    print("score %s/%g in %.1f s; box peak memory %.0f MB of %d, %d out-of-memory kill(s)"
          % (document.get("score", "?"), possible, seconds, peak, args.memory, kills))
    print("output starts: " + "\n  ".join(document.get("output", "(none)").splitlines()[:3]))
    print("results.json and logs: %s" % args.out)
    return 0 if text else 1


if __name__ == "__main__":
    sys.exit(main())
