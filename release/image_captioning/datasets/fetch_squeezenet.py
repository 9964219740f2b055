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
import http.client
import os
import sys
import urllib.error
from pathlib import Path

from fetch_coco import Failure, open_url
from tqdm import tqdm

WEIGHTS, IMAGES = "squeezenet1_1-b8a52dc0.pth", "imagenet_val_25.npz"
HINT = "./get_datasets.sh --mini builds the embedded model instead"


def download(url, part, name):
    """Download url into part, resuming from its current size."""
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    try:
        try:
            response = open_url(url, offset)
        except urllib.error.HTTPError as e:
            if e.code == 416 and e.headers.get("Content-Range") == f"bytes */{offset}":
                return
            raise
        with response:
            if response.status != 206:
                offset = 0
            total = None if response.length is None else offset + response.length
            with open(part, "ab" if offset else "wb") as f, tqdm(desc=name, total=total, initial=offset, unit="B",
                                                                 unit_scale=True, unit_divisor=1024) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise Failure(f"downloading {url} failed: HTTP {e.code} {e.reason}; {HINT}") from None
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as e:
        raise Failure(f"downloading {url} failed ({getattr(e, 'reason', e)}); re-run to retry "
                      f"(a partial download resumes), or {HINT}") from None
    if total is not None and os.path.getsize(part) != total:
        raise Failure(f"downloading {url} stopped at {os.path.getsize(part)} of {total} bytes; re-run to resume")


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
    download(url, part, name)
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
