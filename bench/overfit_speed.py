"""How long the notebooks' overfitting run takes with the solution code, against the 20 s budget.

Runs the SPEC settings (50 captions, 50 epochs, batch 25, hidden 512, wordvec 256, adam 5e-3) for
the RNN and the LSTM side by side on the autograder's fixed 50-caption fixture, then the Transformer
notebook's run (50 captions of load_coco_data, model size 256, 2 heads, 2 layers, feed-forward 256,
adam 1e-3, 100 epochs of batches of 25), and prints seconds, final loss and the ratio to the budget.
Usage: python bench/overfit_speed.py
"""
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as under make and in the notebooks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Run as a script (python bench/NAME.py, or make bench): the reference package is importable only
# once its folder is on sys.path, hence the late imports below.
sys.path.insert(0, os.path.join(ROOT, "source", "image_captioning"))

import captioning  # noqa: E402 (after the sys.path line above)
import numpy as np  # noqa: E402 (after the sys.path line above)
from captioning import checks  # noqa: E402 (after the sys.path line above)

BUDGET_SECONDS = 20.0


def main():
    impl = checks.load_impl(captioning)
    for cell in ("rnn", "lstm"):
        started = time.perf_counter()
        params = checks.overfit_probe(cell)(impl)
        seconds = time.perf_counter() - started
        loss = float(checks.overfit_loss(cell)(impl, params)["final training loss"])
        print("overfit %-4s %6.1f s  final loss %.4f  ratio to the %g s budget %.2f"
              % (cell, seconds, loss, BUDGET_SECONDS, seconds / BUDGET_SECONDS))
    from captioning.captioning_solver import CaptioningSolver
    from captioning.classifiers.transformer import CaptioningTransformer
    from captioning.coco_utils import load_coco_data
    np.random.seed(231)
    data = load_coco_data(max_train=50)
    model = CaptioningTransformer(data["word_to_idx"], input_dim=data["train_features"].shape[1], wordvec_dim=256,
                                  num_heads=2, num_layers=2, ffn_dim=256, max_length=30, dtype=np.float32)
    solver = CaptioningSolver(model, data, update_rule="adam", num_epochs=100, batch_size=25,
                              optim_config={"learning_rate": 1e-3}, verbose=False)
    started = time.perf_counter()
    solver.train()
    seconds = time.perf_counter() - started
    print("overfit %-4s %6.1f s  final loss %.4f  ratio to the %g s budget %.2f"
          % ("transformer", seconds, solver.loss_history[-1], BUDGET_SECONDS, seconds / BUDGET_SECONDS))

if __name__ == "__main__":
    main()
