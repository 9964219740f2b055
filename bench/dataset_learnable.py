"""Is the embedded mini dataset learnable, and how do the models compare? Train a small RNN, LSTM and
Transformer captioner on it for the same time (about a minute each) and score their captions of the
held-out val images, greedy and beam 3, beside a chance baseline (the most frequent train caption
for every image).

Scores: BLEU-1, BLEU-4 and CIDEr-D of the COCO caption evaluation code (captioning.evaluate, with
pycocoevalcap), each caption against all five reference captions of its image.
Usage: python bench/dataset_learnable.py [--seconds 60]   (needs datasets/coco_mini: make data)
"""
import argparse
import os
import time
from collections import Counter

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # small matrices: threads only add overhead (10x on 2 busy cores)
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from source.image_captioning.captioning.captioning_solver import CaptioningSolver
from source.image_captioning.captioning.classifiers.rnn import CaptioningRNN
from source.image_captioning.captioning.classifiers.transformer import CaptioningTransformer
from source.image_captioning.captioning.coco_utils import load_coco_data
from source.image_captioning.captioning.evaluate import (
    caption_text,
    evaluate,
    reference_captions,
    score_captions,
    split_images,
)

SHOWN = ("BLEU-1", "BLEU-4", "CIDEr-D")


def models(data):
    """{name: (model, learning rate)}: three small captioners of about the same size."""
    D, vocab = data["train_features"].shape[1], data["word_to_idx"]
    return {
        "RNN (hidden 128)": (CaptioningRNN(vocab, D, wordvec_dim=64, hidden_dim=128, cell_type="rnn"), 5e-3),
        "LSTM (hidden 128)": (CaptioningRNN(vocab, D, wordvec_dim=64, hidden_dim=128, cell_type="lstm"), 5e-3),
        "Transformer (64, 2 heads, 2 layers)": (CaptioningTransformer(
            vocab, input_dim=D, wordvec_dim=64, num_heads=2, num_layers=2, max_length=20), 1e-3),
    }


def train_for(model, data, learning_rate, seconds):
    """Whole epochs of Adam until `seconds` have passed: (epochs, mean loss of the last 20 steps)."""
    np.random.seed(231)
    solver = CaptioningSolver(model, data, update_rule="adam", optim_config={"learning_rate": learning_rate},
                              lr_decay=0.9, batch_size=100, num_epochs=1, verbose=False)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        solver.train()  # one more epoch
    return solver.epoch, float(np.mean(solver.loss_history[-20:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="training time budget of each model")
    seconds = parser.parse_args().seconds
    np.random.seed(231)
    data = load_coco_data(os.path.join(ROOT, "datasets", "coco_mini"))
    images = split_images(data, "val")
    references = reference_captions(data, "val", images)

    print(f"mini dataset: {len(data['train_features'])} train images ({len(data['train_captions'])} captions), "
          f"{len(images)} val images; each model trained about {seconds:.0f} s; val scores (pycocoevalcap)")
    print(f"{'':46s}" + "".join(f"{m:>9s}" for m in SHOWN) + f"{'epochs':>8s}{'loss':>7s}")
    for name, (model, learning_rate) in models(data).items():
        epochs, loss = train_for(model, data, learning_rate, seconds)
        for decoding, scores in evaluate(model, data, "val", beam_sizes=(1, 3), max_length=16).items():
            print(f"{name + ', ' + decoding:46s}" + "".join(f"{scores[m]:9.3f}" for m in SHOWN)
                  + f"{epochs:8d}{loss:7.2f}")
    frequent = Counter(caption_text(c, data["idx_to_word"]) for c in data["train_captions"]).most_common(1)[0][0]
    chance = score_captions({i: frequent for i in references}, references)
    print(f"{'most frequent train caption':46s}" + "".join(f"{chance[m]:9.3f}" for m in SHOWN))


if __name__ == "__main__":
    main()
