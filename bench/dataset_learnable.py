"""Is the embedded mini dataset learnable, and how do the models compare? Train a small LSTM and a
small Transformer captioner on it for the same time (about a minute each) and compare greedy
captions of the held-out val images with each other and with a chance baseline (the most frequent
train caption for every image).

Scores per val image against its five reference captions: exact match (the caption equals one of
them) and BLEU-1 (clipped unigram precision times the brevity penalty, as in CS231n's extra credit).
Usage: python bench/dataset_learnable.py [--seconds 60]   (needs datasets/coco_mini: make data)
"""
import argparse
import os
import sys
import time
from collections import Counter

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # small matrices: threads only add overhead (10x on 2 busy cores)
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Run as a script (python bench/NAME.py, or make bench): the reference package is importable only
# once its folder is on sys.path, hence the late imports below.
sys.path.insert(0, os.path.join(ROOT, "source", "image_captioning"))

from captioning.captioning_solver import CaptioningSolver  # noqa: E402 (after the sys.path line above)
from captioning.classifiers.rnn import CaptioningRNN  # noqa: E402 (after the sys.path line above)
from captioning.classifiers.transformer import CaptioningTransformer  # noqa: E402 (after the sys.path line above)
from captioning.coco_utils import decode_captions, load_coco_data  # noqa: E402 (after the sys.path line above)


def words(caption):
    """Words of a decoded caption without <START>/<END>."""
    return [w for w in caption.split() if w not in ("<START>", "<END>")]


def bleu1(candidate, references):
    """Unigram BLEU: clipped unigram precision times the brevity penalty (closest reference length)."""
    if not candidate:
        return 0.0
    clipped = sum(min(n, max(ref.count(w) for ref in references)) for w, n in Counter(candidate).items())
    closest = min((len(ref) for ref in references), key=lambda n: (abs(n - len(candidate)), n))
    brevity = 1.0 if len(candidate) > closest else np.exp(1 - closest / len(candidate))
    return brevity * clipped / len(candidate)


def score(candidates, references):
    """(exact-match rate, mean BLEU-1) of one candidate word list per image against its references."""
    exact = np.mean([cand in refs for cand, refs in zip(candidates, references)])
    return exact, np.mean([bleu1(cand, refs) for cand, refs in zip(candidates, references)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="training time budget")
    seconds = parser.parse_args().seconds
    np.random.seed(231)
    data = load_coco_data(os.path.join(ROOT, "datasets", "coco_mini"))
    idx_to_word = data["idx_to_word"]
    references = [[] for _ in data["val_features"]]
    for caption, idx in zip(decode_captions(data["val_captions"], idx_to_word), data["val_image_idxs"]):
        references[idx].append(words(caption))

    D = data["train_features"].shape[1]
    models = {"LSTM (hidden 128)": CaptioningRNN(data["word_to_idx"], input_dim=D, wordvec_dim=64, hidden_dim=128,
                                                 cell_type="lstm"),
              "Transformer (size 64, 2 heads, 2 layers)": CaptioningTransformer(
                  data["word_to_idx"], input_dim=D, wordvec_dim=64, num_heads=2, num_layers=2, max_length=20)}
    rows, sampled = {}, None
    for name, model in models.items():
        np.random.seed(231)
        solver = CaptioningSolver(model, data, update_rule="adam", optim_config={"learning_rate": 5e-3 if "LSTM" in name
                                                                                 else 1e-3},
                                  lr_decay=0.9, batch_size=100, num_epochs=1, verbose=False)
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            solver.train()  # one more epoch
        captions = decode_captions(model.sample(data["val_features"], max_length=16), idx_to_word)
        sampled = sampled or captions
        rows[name] = score([words(c) for c in captions], references) + (
            time.monotonic() - start, solver.epoch, np.mean(solver.loss_history[-20:]))
    train_captions = Counter(decode_captions(data["train_captions"], idx_to_word))
    frequent = words(train_captions.most_common(1)[0][0])
    chance = score([frequent] * len(references), references)

    print(f"mini dataset: {len(data['train_features'])} train images ({len(data['train_captions'])} captions), "
          f"{len(references)} val images; each model trained about {seconds:.0f} s")
    print(f"{'':44s}{'exact match':>12s}{'BLEU-1':>9s}{'epochs':>8s}{'loss':>7s}")
    for name, (exact, bleu, _, epochs, loss) in rows.items():
        print(f"{name + ', greedy':44s}{exact:12.3f}{bleu:9.3f}{epochs:8d}{loss:7.2f}")
    print(f"{'most frequent train caption':44s}{chance[0]:12.3f}{chance[1]:9.3f}")
    print(f"example (LSTM): {' '.join(words(sampled[0]))!r}; references: {[' '.join(r) for r in references[0]]}")


if __name__ == "__main__":
    main()
