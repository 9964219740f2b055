"""Build the network visualization notebook's embedded data, offline, in seconds:
datasets/netviz_mini/shapes_cnn.pt (a small CNN trained here, deterministically, with its class
names) and shapes_val_25.npz (25 images it has never seen, in the layout of the course's
imagenet_val_25.npz: X uint8 (25, 64, 64, 3), y, label_map).

The classes are 3 shapes x 3 colours ("red circle", ...), drawn on a random low-contrast
background at a random place and size, so that a saliency map has an object to find and a class
visualization something recognisable to draw. Same inputs, same torch version: the same model
bytes, and the same images (their .npz container is the Python's zipfile's, whose header fields
differ between Python releases).
"""
import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (0.85, 0.12, 0.10), "green": (0.10, 0.70, 0.15), "blue": (0.12, 0.25, 0.90)}
CLASS_NAMES = ["%s %s" % (colour, shape) for shape in SHAPES for colour in COLOURS]
SIZE = 64


def package_dir():
    """The folder holding the captioning package: the student release (this file's parent's
    parent) or the kit (source/image_captioning)."""
    for candidate in (HERE.parent, HERE.parent / "source" / "image_captioning"):
        if (candidate / "captioning" / "net_visualization_utils.py").is_file():
            return candidate
    raise SystemExit("make_netviz.py: captioning/net_visualization_utils.py not found next to datasets/")


def import_captioning():
    """The captioning package of package_dir(), imported by its path (sys.path untouched)."""
    import importlib.util
    if "captioning" not in sys.modules:
        package = package_dir() / "captioning"
        spec = importlib.util.spec_from_file_location("captioning", package / "__init__.py",
                                                      submodule_search_locations=[str(package)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["captioning"] = module
        spec.loader.exec_module(module)
    return sys.modules["captioning"]


def draw(rng, n):
    """n images (n, 64, 64, 3) uint8 and their labels."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    images = np.empty((n, SIZE, SIZE, 3), np.float32)
    labels = rng.randint(len(CLASS_NAMES), size=n)
    for i, label in enumerate(labels):
        shape, colour = SHAPES[label // len(COLOURS)], list(COLOURS.values())[label % len(COLOURS)]
        # background: a grey level with a smooth random tint and a little noise
        base = rng.uniform(0.35, 0.75) + 0.08 * rng.randn(1, 1, 3)
        ramp = 0.10 * (rng.randn(3) * (xx / SIZE - 0.5)[..., None] + rng.randn(3) * (yy / SIZE - 0.5)[..., None])
        img = base + ramp + 0.03 * rng.randn(SIZE, SIZE, 3)
        r = rng.uniform(8, 15)
        cx, cy = rng.uniform(r + 2, SIZE - r - 2, size=2)
        if shape == "circle":
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r ** 2
        elif shape == "square":
            mask = (np.abs(xx - cx) <= 0.85 * r) & (np.abs(yy - cy) <= 0.85 * r)
        else:  # upward triangle inside the circle of radius r
            top, bottom = cy - r, cy + 0.6 * r
            half = (yy - top) / (bottom - top) * r
            mask = (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half)
        tint = np.clip(np.array(colour) + 0.06 * rng.randn(3), 0, 1)
        img[mask] = tint * rng.uniform(0.85, 1.1) + 0.02 * rng.randn(int(mask.sum()), 3)
        images[i] = img
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8), labels.astype(np.int64)


def train(model, X, y, steps, seed, log):
    import torch
    from captioning.net_visualization_utils import preprocess
    torch.manual_seed(seed)
    inputs = torch.cat([preprocess(x) for x in X])
    targets = torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=6e-3)
    rng = np.random.RandomState(seed)
    model.train()
    for step in range(steps):
        batch = torch.from_numpy(rng.randint(len(X), size=32))
        loss = torch.nn.functional.cross_entropy(model(inputs[batch]), targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if log and (step + 1) % 100 == 0:
            print("  step %d: loss %.3f" % (step + 1, loss.item()))
    return model.eval()


def accuracy(model, X, y):
    import torch
    from captioning.net_visualization_utils import preprocess
    with torch.no_grad():
        scores = model(torch.cat([preprocess(x) for x in X]))
    return float((scores.argmax(1).numpy() == y).mean())


def build(dest, seed=231, train_images=3000, steps=800, quiet=False):
    import torch
    import_captioning()
    from captioning.net_visualization_utils import ShapesCNN
    torch.set_num_threads(1)  # same bytes on any machine with this torch
    torch.use_deterministic_algorithms(True)
    started = time.time()
    rng = np.random.RandomState(seed)
    X_train, y_train = draw(rng, train_images)
    X_val, y_val = draw(rng, 25)
    torch.manual_seed(seed)
    config = {"width": 16, "dropout": 0.2}
    model = train(ShapesCNN(len(CLASS_NAMES), **config), X_train, y_train, steps, seed, not quiet)
    val_accuracy = accuracy(model, *draw(np.random.RandomState(seed + 1), 500))
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / "shapes_cnn.pt.tmp"
    torch.save({"state_dict": model.state_dict(), "class_names": CLASS_NAMES, "config": config,
                "val_accuracy": val_accuracy, "seed": seed}, tmp)
    os.replace(tmp, dest / "shapes_cnn.pt")
    tmp = dest / "shapes_val_25.tmp.npz"
    np.savez(tmp, X=X_val, y=y_val, label_map=np.array(CLASS_NAMES))
    os.replace(tmp, dest / "shapes_val_25.npz")
    if not quiet:
        print("netviz_mini: %d classes, held-out accuracy %.3f, %.1f s -> %s"
              % (len(CLASS_NAMES), val_accuracy, time.time() - started, dest))
    return val_accuracy


def stamp(seed):
    """What the files depend on: this script, the model's code, the seed and torch's version."""
    import torch
    digest = hashlib.sha256(("%d %s" % (seed, torch.__version__)).encode())
    for path in (Path(__file__), package_dir() / "captioning" / "net_visualization_utils.py"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=HERE / "netviz_mini")
    parser.add_argument("--seed", type=int, default=231)
    args = parser.parse_args()
    try:
        import torch  # noqa: F401
    except ImportError:
        print("make_netviz.py: PyTorch is not installed (pip install -r requirements.txt): the network "
              "visualization notebook's embedded model was not built", file=sys.stderr)
        sys.exit(1)
    expected = stamp(args.seed)
    stamp_file = args.dest / ".stamp"
    if stamp_file.is_file() and stamp_file.read_text() == expected:
        print("netviz_mini is up to date in %s" % args.dest)
        return
    build(args.dest, args.seed)
    stamp_file.write_text(expected)


if __name__ == "__main__":
    main()
