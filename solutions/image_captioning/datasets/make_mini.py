"""Build the embedded offline dataset `coco_mini/` in exactly the COCO captioning format (SPEC §3).

Each image is a 64x64 PNG of one or two coloured shapes; it gets five captions from a small
grammar ("<START> a red circle above a blue square <END>"). fc7-like 4096-d features come from a
fixed random image encoder (ReLU of a random projection of the 16x16 downsampled pixels); the
512-d "pca" features project them on the top principal components of the train features.
Image "urls" are paths relative to the dataset folder (images/train/00000.png).
The output is byte-for-byte deterministic; a `.stamp` holding the generator's hash makes reruns no-ops.

Usage: python make_mini.py [--dest DIR]   (default: coco_mini/ next to this file)
"""
import argparse
import hashlib
import json
import os
import shutil
import tempfile

# Single-threaded BLAS: the same bytes whatever the core count, and no thread thrashing on busy machines.
os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = "1"

import coco_format
import h5py
import numpy as np
from PIL import Image

SEED = 231
NUM_IMAGES = {"train": 1500, "val": 300}
SIZE = 64
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
           "yellow": (235, 200, 30), "purple": (140, 60, 180)}
SHAPES = ("circle", "square", "triangle")
# single-object positions: name -> (x, y) centre, and how captions say it
POSITIONS = {"left": ((16, 32), "on the left"), "right": ((48, 32), "on the right"),
             "top": ((32, 16), "at the top"), "bottom": ((32, 48), "at the bottom"),
             "middle": ((32, 32), "in the middle")}
# two-object layouts: first and second centre, "first REL second", "second REL first"
LAYOUTS = {"horizontal": ((16, 32), (48, 32), "to the left of", "to the right of"),
           "vertical": ((32, 16), (32, 48), "above", "below")}
SINGLE_TEMPLATES = ("a {a} {where}", "there is a {a} {where}", "a picture of a {a} {where}",
                    "a {a} {where} of the image", "a single {a} on a white background")
PAIR_TEMPLATES = ("a {a} {rel} a {b}", "a {b} {rev} a {a}", "there is a {a} {rel} a {b}",
                  "a {a} and a {b}", "a picture of a {b} {rev} a {a}")


def draw(image, shape, colour, centre, radius):
    """Paint one shape onto the (SIZE, SIZE, 3) uint8 image in place."""
    y, x = np.mgrid[:SIZE, :SIZE] + 0.5
    dx, dy = x - centre[0], y - centre[1]
    if shape == "circle":
        mask = dx ** 2 + dy ** 2 <= radius ** 2
    elif shape == "square":
        mask = np.maximum(abs(dx), abs(dy)) <= 0.85 * radius
    else:  # triangle pointing up
        mask = (abs(dy) <= radius) & (abs(dx) <= (dy + radius) / 2)
    image[mask] = COLOURS[colour]


def make_scene(rng):
    """Return (image, five captions) for one random scene."""
    image = np.full((SIZE, SIZE, 3), 245, np.uint8)
    objects = [(str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)))]
    if rng.random() < 0.3:
        position = str(rng.choice(list(POSITIONS)))
        centres, where = [POSITIONS[position][0]], POSITIONS[position][1]
        words = {"where": where}
        templates = SINGLE_TEMPLATES
    else:
        while len(objects) < 2:
            other = (str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)))
            if other != objects[0]:
                objects.append(other)
        first, second, rel, rev = LAYOUTS[str(rng.choice(list(LAYOUTS)))]
        centres, words = [first, second], {"rel": rel, "rev": rev, "b": " ".join(objects[1])}
        templates = PAIR_TEMPLATES
    for (colour, shape), centre in zip(objects, centres):
        jittered = centre + rng.integers(-3, 4, size=2)
        draw(image, shape, colour, jittered, radius=rng.integers(8, 12))
    captions = [t.format(a=" ".join(objects[0]), **words) for t in templates]
    return image, captions


def encode(images, rng):
    """Fixed random 'VGG fc7' encoder: (n, SIZE, SIZE, 3) uint8 -> (n, 4096) float32 features."""
    small = images.reshape(len(images), 16, 4, 16, 4, 3).mean(axis=(2, 4)) / 255.0
    x = (1.0 - small).reshape(len(images), -1)  # shapes bright on a dark background
    weights = rng.standard_normal((x.shape[1], 4096)) / np.sqrt(x.shape[1])
    bias = rng.uniform(-0.5, 0.0, 4096)
    features = 4 * np.maximum(x @ weights + bias, 0.0)  # x4: a more fc7-like scale, easier to fit
    return (np.round(features * 16) / 16).astype(np.float32)  # coarse values compress well


def pca(train, val, dims=512):
    """Project both splits on the top `dims` principal components of `train` (signs fixed)."""
    mean = train.mean(axis=0, dtype=np.float64)
    centred = train - mean
    eigvals, eigvecs = np.linalg.eigh(centred @ centred.T)  # via the n x n Gram matrix: fast for n < d
    components = centred.T @ (eigvecs[:, ::-1][:, :dims] / np.sqrt(eigvals[::-1][:dims]))
    components *= np.sign(components[abs(components).argmax(axis=0), np.arange(dims)])
    return [((x - mean) @ components).astype(np.float32) for x in (train, val)]


def encode_captions(captions, word_to_idx):
    """Token ids (n, 17) int32: <START> words <END> then <NULL> padding."""
    out = np.zeros((len(captions), coco_format.CAPTION_LENGTH), np.int32)
    for row, caption in zip(out, captions):
        ids = [word_to_idx[w] for w in ["<START>", *caption.split(), "<END>"]]
        row[:len(ids)] = ids
    return out


def write_h5(path, **arrays):
    with h5py.File(path, "w") as f:
        for name, array in arrays.items():
            f.create_dataset(name, data=array, track_times=False,
                             compression="gzip", shuffle=True, chunks=True)


def build(folder):
    """Write the whole dataset into the empty folder `folder`."""
    rng = np.random.default_rng(SEED)
    scenes = {split: [make_scene(rng) for _ in range(n)] for split, n in NUM_IMAGES.items()}
    words = sorted({w for split in scenes.values() for _, caps in split for c in caps for w in c.split()})
    idx_to_word = [*coco_format.SPECIAL_TOKENS, *words]
    word_to_idx = {w: i for i, w in enumerate(idx_to_word)}
    with open(os.path.join(folder, coco_format.VOCAB), "w") as f:
        json.dump({"idx_to_word": idx_to_word, "word_to_idx": word_to_idx}, f)

    captions, fc7 = {}, {}
    for split, items in scenes.items():
        os.makedirs(os.path.join(folder, "images", split))
        paths = [f"images/{split}/{i:05d}.png" for i in range(len(items))]
        for path, (image, _) in zip(paths, items):
            Image.fromarray(image).save(os.path.join(folder, path))
        with open(os.path.join(folder, f"{split}2014_urls.txt"), "w") as f:
            f.write("".join(p + "\n" for p in paths))
        captions[f"{split}_captions"] = encode_captions([c for _, caps in items for c in caps], word_to_idx)
        counts = [len(caps) for _, caps in items]
        captions[f"{split}_image_idxs"] = np.repeat(np.arange(len(items), dtype=np.int32), counts)
        fc7[split] = encode(np.stack([image for image, _ in items]), np.random.default_rng(SEED))
    write_h5(os.path.join(folder, coco_format.CAPTIONS), **captions)
    for split, features in zip(fc7, pca(fc7["train"], fc7["val"])):
        write_h5(os.path.join(folder, f"{split}2014_vgg16_fc7.h5"), features=fc7[split])
        write_h5(os.path.join(folder, f"{split}2014_vgg16_fc7_pca.h5"), features=features)


def read(path):
    with open(path) as f:
        return f.read()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "coco_mini"))
    dest = os.path.abspath(parser.parse_args().dest)
    stamp = hashlib.sha256()
    for module in (__file__, coco_format.__file__):
        with open(module, "rb") as f:
            stamp.update(f.read())
    stamp = stamp.hexdigest()
    stamp_file = os.path.join(dest, ".stamp")
    if os.path.isfile(stamp_file) and read(stamp_file) == stamp:
        print(f"Mini dataset already built in {dest}")
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    folder = tempfile.mkdtemp(prefix=".coco_mini-", dir=os.path.dirname(dest))
    try:
        build(folder)
        coco_format.verify(folder)
        with open(os.path.join(folder, ".stamp"), "w") as f:
            f.write(stamp)
        os.chmod(folder, 0o755)  # mkdtemp makes it private
        coco_format.install(folder, dest)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # only left if something failed
    print(f"Built the mini dataset in {dest}")


if __name__ == "__main__":
    main()
