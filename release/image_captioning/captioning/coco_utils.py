"""Loading the COCO captioning data (or the small offline stand-in) for the captioning notebooks.

Datasets live in a `datasets/` folder holding `coco_captioning/` (the real data, fetched with
`./get_datasets.sh`) and/or `coco_mini/` (a small synthetic dataset built offline with
`./get_datasets.sh --mini`). That folder is $CAPTIONING_DATASETS if set, else the first
`datasets/` containing one of them found walking up from the working directory or from this file.
"""
import json
import os

import h5py
import numpy as np

DATASET_NAMES = ("coco_captioning", "coco_mini")  # preferred first
FETCH_HINT = ("run `bash get_datasets.sh --mini` (offline, about half a minute) or `bash get_datasets.sh` "
              "(real COCO, ~1 GB) in the folder holding get_datasets.sh (see its README.md), then run this cell again")


class DatasetError(RuntimeError, FileNotFoundError):
    """The captioning dataset is missing or unreadable."""


def find_datasets_dir():
    """Return the folder holding coco_captioning/ and/or coco_mini/, or None."""
    if os.environ.get("CAPTIONING_DATASETS"):
        return os.environ["CAPTIONING_DATASETS"]
    for start in (os.getcwd(), os.path.dirname(os.path.abspath(__file__))):
        folder = start
        while True:
            candidate = os.path.join(folder, "datasets")
            if any(os.path.isdir(os.path.join(candidate, name)) for name in DATASET_NAMES):
                return candidate
            if os.path.dirname(folder) == folder:
                break
            folder = os.path.dirname(folder)
    return None


def default_base_dir():
    """The real dataset folder if present, else the embedded one; DatasetError if neither."""
    datasets = find_datasets_dir()
    for name in DATASET_NAMES:
        if datasets and os.path.isdir(os.path.join(datasets, name)):
            return os.path.join(datasets, name)
    where = datasets or "$CAPTIONING_DATASETS or a datasets/ folder above the working directory"
    raise DatasetError(f"No captioning dataset found in {where}: {FETCH_HINT}")


def _read_h5(path, key=None):
    """All datasets of an h5 file as a dict of arrays (or just `key`), with a clear error if unreadable."""
    try:
        with h5py.File(path, "r") as f:
            return np.asarray(f[key]) if key else {k: np.asarray(v) for k, v in f.items()}
    except (OSError, KeyError) as e:
        problem = "is missing" if not os.path.exists(path) else f"is unreadable or incomplete ({e})"
        raise DatasetError(f"{path} {problem}: {FETCH_HINT}") from None


def _read_lines(path):
    try:
        with open(path) as f:
            return [line.strip() for line in f]
    except OSError:
        raise DatasetError(f"{path} is missing: {FETCH_HINT}") from None


def load_coco_data(base_dir=None, max_train=None, pca_features=True):
    """Load a captioning dataset folder into a dict of arrays (see the notebook for the keys).

    base_dir: the dataset folder; None picks coco_captioning/ if present, else coco_mini/.
    max_train: keep this many train captions, drawn with replacement (np.random.randint).
    pca_features: 512-d PCA features instead of the 4096-d VGG16 fc7 ones.
    Local image paths in the url lists are returned as absolute paths.
    """
    if base_dir is None:
        base_dir = default_base_dir()
        kind = "COCO captioning" if os.path.basename(base_dir) == DATASET_NAMES[0] else "embedded mini"
        print(f"Using the {kind} dataset in {base_dir}")
    base_dir = os.path.abspath(base_dir)
    data = _read_h5(os.path.join(base_dir, "coco2014_captions.h5"))
    suffix = "_pca" if pca_features else ""
    for split in ("train", "val"):
        path = os.path.join(base_dir, f"{split}2014_vgg16_fc7{suffix}.h5")
        data[f"{split}_features"] = _read_h5(path, "features").astype(np.float32, copy=False)
    try:
        with open(os.path.join(base_dir, "coco2014_vocab.json")) as f:
            data.update(json.load(f))
    except (OSError, ValueError) as e:
        raise DatasetError(f"{base_dir}/coco2014_vocab.json is missing or invalid ({e}): {FETCH_HINT}") from None
    for split in ("train", "val"):
        urls = _read_lines(os.path.join(base_dir, f"{split}2014_urls.txt"))
        data[f"{split}_urls"] = np.asarray([u if "://" in u else os.path.join(base_dir, u) for u in urls])

    if max_train is not None:
        num_train = data["train_captions"].shape[0]
        mask = np.random.randint(num_train, size=max_train)
        data["train_captions"] = data["train_captions"][mask]
        data["train_image_idxs"] = data["train_image_idxs"][mask]
    return data


def decode_captions(captions, idx_to_word):
    """Token ids -> text: a string for one caption (1-D), a list of strings for a batch (2-D).

    Words up to and including <END> are kept; <NULL> padding is dropped.
    """
    if np.ndim(captions) == 1:
        return decode_captions(np.asarray(captions)[None], idx_to_word)[0]
    decoded = []
    for caption in captions:
        words = []
        for idx in caption:
            word = idx_to_word[idx]
            if word != "<NULL>":
                words.append(word)
            if word == "<END>":
                break
        decoded.append(" ".join(words))
    return decoded


def sample_coco_minibatch(data, batch_size=100, split="train"):
    """Random captions of a split (with replacement) -> (captions, image_features, urls)."""
    split_size = data[f"{split}_captions"].shape[0]
    mask = np.random.choice(split_size, batch_size)
    captions = data[f"{split}_captions"][mask]
    image_idxs = data[f"{split}_image_idxs"][mask]
    return captions, data[f"{split}_features"][image_idxs], data[f"{split}_urls"][image_idxs]
