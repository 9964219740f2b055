"""Google Colab's set-up, run by each notebook's first cell there: what Colab lacks, the data."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

FOLDER = Path(__file__).resolve().parent.parent  # the assignment folder
# What the assignment imports that Colab's image lacks: module -> its distribution in requirements.txt.
NOT_ON_COLAB = {"pycocoevalcap": "pycocoevalcap", "fpdf": "fpdf2"}
EMBEDDED = ("datasets/coco_mini", "datasets/netviz_mini")  # what `bash get_datasets.sh --mini` builds


def run(argv, **kwargs):
    """Run argv with its output shown in the notebook; a failure stops the cell."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    print(proc.stdout, end="")
    proc.check_returncode()


def prepare():
    """Install what NOT_ON_COLAB lists and is missing, at requirements.txt's versions, and build the
    embedded dataset and model unless they are there (about half a minute, once: they stay in your
    Drive)."""
    pins = dict(line.split("==", 1) for line in (FOLDER / "requirements.txt").read_text().split() if "==" in line)
    missing = ["%s==%s" % (dist, pins[dist]) for module, dist in NOT_ON_COLAB.items()
               if importlib.util.find_spec(module) is None]
    if missing:
        run([sys.executable, "-m", "pip", "install", "--quiet", *missing])
    if not all((FOLDER / rel).is_dir() for rel in EMBEDDED):
        print("Building the embedded dataset and model (about half a minute, once)")
        run(["bash", "get_datasets.sh", "--mini"], cwd=FOLDER, env=dict(os.environ, PYTHON=sys.executable))
