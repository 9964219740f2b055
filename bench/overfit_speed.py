"""How long the overfitting runs take with the solution code, against the 20 s budget.

Side by side: the notebooks' run (the course's settings: 50 captions of the embedded dataset,
50 epochs, batch 25, hidden 512, wordvec 256, adam 5e-3) and the grader's training check (its own
small fixture), for the RNN and the LSTM; seconds, final loss and the ratio to the budget.
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

import numpy as np  # noqa: E402 (after the sys.path line above)

import captioning  # noqa: E402 (after the sys.path line above)
from captioning import checks  # noqa: E402 (after the sys.path line above)
from captioning.captioning_solver import CaptioningSolver  # noqa: E402 (after the sys.path line above)
from captioning.classifiers.rnn import CaptioningRNN  # noqa: E402 (after the sys.path line above)
from captioning.coco_utils import load_coco_data  # noqa: E402 (after the sys.path line above)

BUDGET_SECONDS = 20.0
NOTEBOOK = {"rnn": dict(dtype=np.float64, lr_decay=0.95), "lstm": dict(dtype=np.float32, lr_decay=0.995)}


def notebook_run(cell):
    """The notebook's overfitting cell: (seconds, final training loss)."""
    np.random.seed(231)
    data = load_coco_data(max_train=50)
    model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1], hidden_dim=512,
                          wordvec_dim=256, cell_type=cell, dtype=NOTEBOOK[cell]["dtype"])
    solver = CaptioningSolver(model, data, update_rule="adam", num_epochs=50, batch_size=25,
                              optim_config={"learning_rate": 5e-3}, lr_decay=NOTEBOOK[cell]["lr_decay"],
                              verbose=False)
    started = time.perf_counter()
    solver.train()
    return time.perf_counter() - started, solver.loss_history[-1]


def grader_check(cell):
    """The grader's training check on the reference: (seconds, final training loss)."""
    impl = checks.load_impl(captioning)
    started = time.perf_counter()
    params = checks.overfit_probe(cell)(impl)
    seconds = time.perf_counter() - started
    return seconds, float(checks.overfit_loss(cell)(impl, params)["final training loss"])


def main():
    for label, run in (("notebook", notebook_run), ("grader check", grader_check)):
        for cell in ("rnn", "lstm"):
            seconds, loss = run(cell)
            print("overfit %-4s %-12s %5.1f s  final loss %.4f  ratio to the %g s budget %.2f"
                  % (cell, label, seconds, loss, BUDGET_SECONDS, seconds / BUDGET_SECONDS))


if __name__ == "__main__":
    main()
