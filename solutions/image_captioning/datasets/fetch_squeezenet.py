"""Download and verify the network visualization notebook's real model and images (run by
../get_datasets.sh): torchvision's SqueezeNet 1.1 ImageNet weights (squeezenet1_1-b8a52dc0.pth) and
the course's 25 ImageNet validation images (imagenet_val_25.npz), into DEST.

Each file is downloaded to FILE.part (a broken-off download resumes with an HTTP Range request),
verified (the weights: the sha256 prefix in their name, as torchvision checks it, and a strict
load into the kit's SqueezeNet; the images: keys, dtypes and shapes), and only then renamed to
FILE. Any failure prints one line and exits with status 1.
"""
import argparse
import hashlib
import os
import sys
from pathlib import Path

from fetch_coco import Failure, download

WEIGHTS, IMAGES = "squeezenet1_1-b8a52dc0.pth", "imagenet_val_25.npz"
HINT = "./get_datasets.sh --mini builds the embedded model instead"


def verify_weights(path, hash_prefix):
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if not digest.startswith(hash_prefix):
        raise ValueError(f"its sha256 is {digest[:16]}..., not {hash_prefix}...")
    import torch
    from make_netviz import import_captioning
    import_captioning()
    from captioning.net_visualization_utils import SqueezeNet
    SqueezeNet().load_state_dict(torch.load(path, map_location="cpu", weights_only=True))  # strict


def verify_images(path):
    import numpy as np
    with np.load(path, allow_pickle=True) as f:
        X, y, label_map = f["X"], f["y"], f["label_map"].item()
    if X.dtype != np.uint8 or X.ndim != 4 or X.shape[3] != 3 or y.shape != (len(X),) or not isinstance(label_map, dict):
        raise ValueError(f"X {X.dtype} {X.shape}, y {y.shape}: not the course's layout")


def fetch_one(url, dest, name, verify):
    target = dest / name
    if target.is_file():
        try:
            verify(target)
            print(f"{target} is already there; nothing to do.")
            return
        except Exception as e:
            raise Failure(f"{target} exists but does not verify ({e}); delete it and re-run") from None
    part = dest / (name + ".part")
    download(url, part, name, HINT)
    try:
        verify(part)
    except Exception as e:
        part.unlink()
        raise Failure(f"the file from {url} is not {name} ({e}); deleted it, re-run to download it again") from None
    os.replace(part, target)
    print(f"Installed {target}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights-url", required=True)
    parser.add_argument("--images-url", required=True)
    parser.add_argument("--dest", required=True, type=Path, help="folder to hold the two files")
    parser.add_argument("--weights-hash", default=os.environ.get("SQUEEZENET_HASH") or WEIGHTS.split("-")[1][:8],
                        help="the sha256 prefix the weights must have (default $SQUEEZENET_HASH, else the one "
                             "in their name)")
    args = parser.parse_args()
    try:
        args.dest.mkdir(parents=True, exist_ok=True)
        fetch_one(args.weights_url, args.dest, WEIGHTS, lambda p: verify_weights(p, args.weights_hash))
        fetch_one(args.images_url, args.dest, IMAGES, verify_images)
    except (Failure, OSError) as e:
        sys.exit(f"get_datasets.sh: {e}")


if __name__ == "__main__":
    main()
