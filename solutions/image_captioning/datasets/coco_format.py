"""The on-disk format of a captioning dataset folder (SPEC §3): checks and atomic installation.

Shared by fetch_coco.py (downloaded COCO data) and make_mini.py (embedded dataset).
"""
import json
import os
import shutil

import h5py
import numpy as np

CAPTIONS = "coco2014_captions.h5"
VOCAB = "coco2014_vocab.json"
# feature file -> feature width
FEATURES = {
    "train2014_vgg16_fc7.h5": 4096,
    "val2014_vgg16_fc7.h5": 4096,
    "train2014_vgg16_fc7_pca.h5": 512,
    "val2014_vgg16_fc7_pca.h5": 512,
}
URLS = ("train2014_urls.txt", "val2014_urls.txt")
FILES = (CAPTIONS, VOCAB, *FEATURES, *URLS)
CAPTION_LENGTH = 17
SPECIAL_TOKENS = ("<NULL>", "<START>", "<END>", "<UNK>")


def _check(condition, message):
    if not condition:
        raise ValueError(message)


def verify(folder):
    """Raise ValueError naming the first problem if `folder` is not a complete, consistent dataset."""
    missing = [name for name in FILES if not os.path.isfile(os.path.join(folder, name))]
    _check(not missing, f"missing {', '.join(missing)}")
    with open(os.path.join(folder, VOCAB)) as f:
        vocab = json.load(f)
    idx_to_word, word_to_idx = vocab.get("idx_to_word"), vocab.get("word_to_idx")
    _check(isinstance(idx_to_word, list) and isinstance(word_to_idx, dict), f"{VOCAB}: bad keys")
    _check(tuple(idx_to_word[:4]) == SPECIAL_TOKENS, f"{VOCAB}: special tokens are not {SPECIAL_TOKENS}")
    _check(all(word_to_idx.get(w) == i for i, w in enumerate(idx_to_word)), f"{VOCAB}: inconsistent")
    rows = {}
    for name, width in FEATURES.items():
        try:
            with h5py.File(os.path.join(folder, name), "r") as f:
                feats = f["features"]
                _check(feats.dtype == np.float32 and feats.ndim == 2 and feats.shape[1] == width,
                       f"{name}: features are {feats.dtype} {feats.shape}, expected float32 (n, {width})")
                rows[name] = feats.shape[0]
                feats[-1]  # reading the last row catches truncated files
        except (OSError, KeyError) as e:
            raise ValueError(f"{name}: unreadable ({e})") from None
    for split in ("train", "val"):
        n = rows[f"{split}2014_vgg16_fc7.h5"]
        _check(rows[f"{split}2014_vgg16_fc7_pca.h5"] == n, f"{split}: fc7 and pca row counts differ")
        with open(os.path.join(folder, f"{split}2014_urls.txt")) as f:
            _check(sum(1 for _ in f) == n, f"{split}2014_urls.txt: not one line per image")
        try:
            with h5py.File(os.path.join(folder, CAPTIONS), "r") as f:
                captions, idxs = f[f"{split}_captions"][()], f[f"{split}_image_idxs"][()]
        except (OSError, KeyError) as e:
            raise ValueError(f"{CAPTIONS}: unreadable ({e})") from None
        _check(captions.dtype == np.int32 and captions.ndim == 2 and captions.shape[1] == CAPTION_LENGTH,
               f"{split}_captions: {captions.dtype} {captions.shape}, expected int32 (n, {CAPTION_LENGTH})")
        _check(idxs.dtype == np.int32 and idxs.shape == captions.shape[:1],
               f"{split}_image_idxs: {idxs.dtype} {idxs.shape}, expected int32 ({captions.shape[0]},)")
        _check(0 <= captions.min() and captions.max() < len(idx_to_word), f"{split}_captions: bad word ids")
        _check(0 <= idxs.min() and idxs.max() < n, f"{split}_image_idxs: out of range")


def install(built, dest):
    """Move the finished folder `built` to `dest` by renames, replacing an old `dest` if any."""
    old = f"{built}.old"
    if os.path.exists(dest):
        os.rename(dest, old)
    os.rename(built, dest)
    shutil.rmtree(old, ignore_errors=True)
