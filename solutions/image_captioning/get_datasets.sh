#!/usr/bin/env bash
# Get the captioning data into datasets/ (where captioning.coco_utils.load_coco_data looks).
#   ./get_datasets.sh          download, verify and unpack the official COCO captioning data (~1 GB)
#                              into datasets/coco_captioning/; an interrupted download resumes on rerun
#   ./get_datasets.sh --mini   build the small offline datasets/coco_mini/ and the embedded model of the
#                              network visualization notebook, datasets/netviz_mini/ (~30 s; PyTorch)
#   ./get_datasets.sh --squeezenet   the network visualization's real model and data: torchvision's
#                              SqueezeNet 1.1 ImageNet weights (5 MB) and the course's 25 ImageNet
#                              validation images, into datasets/squeezenet/ (verified, resumable; PyTorch)
# Options: --url URL (default $COCO_URL, else the CS231n URL), --weights-url and --images-url (defaults
# $SQUEEZENET_URL and $IMAGENET_VAL_URL, else download.pytorch.org's and CS231n's), --dest DIR (default $DATASETS_DIR,
# else datasets/ next to this script). Runs on $PYTHON if set, else the .venv next to this script,
# else the first python3 on PATH; it needs numpy, h5py, pillow and tqdm.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
url="${COCO_URL:-http://cs231n.stanford.edu/coco_captioning.zip}"
dest="${DATASETS_DIR:-$here/datasets}"
weights_url="${SQUEEZENET_URL:-https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth}"
images_url="${IMAGENET_VAL_URL:-http://cs231n.stanford.edu/imagenet_val_25.npz}"
mini=""
squeezenet=""
while [ $# -gt 0 ]; do
    case "$1" in
        --mini) mini=1 ;;
        --squeezenet) squeezenet=1 ;;
        --weights-url) weights_url="${2:?--weights-url needs a value}"; shift ;;
        --images-url) images_url="${2:?--images-url needs a value}"; shift ;;
        --url) url="${2:?--url needs a value}"; shift ;;
        --dest) dest="${2:?--dest needs a value}"; shift ;;
        -h|--help) sed -n '2,14p' "$0" | cut -c3-; exit 0 ;;
        *) echo "get_datasets.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ -n "${PYTHON:-}" ]; then
    python="$PYTHON"
elif [ -x "$here/.venv/bin/python" ]; then
    python="$here/.venv/bin/python"
else
    python="$(command -v python3 || command -v python || true)"
fi
if [ -z "$python" ] || ! "$python" -c "import numpy, h5py, PIL, tqdm" 2>/dev/null; then
    echo "get_datasets.sh: ${python:-python3} lacks numpy, h5py, pillow or tqdm;" \
         "activate the environment you installed requirements.txt into (see README.md; staff: make data)" \
         "or set PYTHON to a python3 that has them" >&2
    exit 1
fi

if [ -n "$mini" ]; then
    "$python" "$here/datasets/make_mini.py" --dest "$dest/coco_mini"
    # The network visualization notebook's embedded model (PyTorch, trained here in seconds).
    exec "$python" "$here/datasets/make_netviz.py" --dest "$dest/netviz_mini"
fi
if [ -n "$squeezenet" ]; then
    exec "$python" "$here/datasets/fetch_squeezenet.py" --weights-url "$weights_url" --images-url "$images_url" \
        --dest "$dest/squeezenet"
fi
exec "$python" "$here/datasets/fetch_coco.py" --url "$url" --dest "$dest"
