"""How long the overfitting runs take with the solution code, against the 20 s budget.

Side by side: the notebooks' runs (the course's settings on 50 captions of the embedded dataset:
RNN and LSTM with hidden 512, wordvec 256, adam 5e-3, 50 epochs of batches of 25; the Transformer
with model size 256, 2 heads, 2 layers, feed-forward 256, adam 1e-3, 100 epochs) and the grader's
training checks (their own small fixture); seconds, final loss and the ratio to the budget.
Usage: python bench/overfit_speed.py
"""
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as under make and in the notebooks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import numpy as np

import source.image_captioning.captioning as captioning
from source.image_captioning.captioning import checks
from source.image_captioning.captioning.captioning_solver import CaptioningSolver
from source.image_captioning.captioning.classifiers.rnn import CaptioningRNN
from source.image_captioning.captioning.classifiers.transformer import CaptioningTransformer
from source.image_captioning.captioning.coco_utils import load_coco_data

BUDGET_SECONDS = 20.0
MODELS = ("rnn", "lstm", "transformer")


def notebook_run(model_name):
    """The notebook's overfitting cell: (seconds, final training loss)."""
    np.random.seed(231)
    data = load_coco_data(max_train=50)
    D = data["train_features"].shape[1]
    if model_name == "transformer":
        model = CaptioningTransformer(data["word_to_idx"], input_dim=D, wordvec_dim=256, num_heads=2, num_layers=2,
                                      ffn_dim=256, max_length=30, dtype=np.float32)
        settings = dict(num_epochs=100, optim_config={"learning_rate": 1e-3})
    else:
        model = CaptioningRNN(data["word_to_idx"], input_dim=D, hidden_dim=512, wordvec_dim=256, cell_type=model_name,
                              dtype=np.float64 if model_name == "rnn" else np.float32)
        settings = dict(num_epochs=50, optim_config={"learning_rate": 5e-3},
                        lr_decay=0.95 if model_name == "rnn" else 0.995)
    solver = CaptioningSolver(model, data, update_rule="adam", batch_size=25, verbose=False, **settings)
    started = time.perf_counter()
    solver.train()
    return time.perf_counter() - started, solver.loss_history[-1]


def grader_check(model_name):
    """The grader's training check on the reference: (seconds, final training loss)."""
    impl = checks.load_impl(captioning)
    check = next(c for c in checks.PUBLIC_CHECKS if c.unit == "overfit (%s)" % model_name)
    started = time.perf_counter()
    params = check.run(impl)
    seconds = time.perf_counter() - started
    return seconds, float(check.evaluate(impl, params)["final training loss"])


def main():
    for label, run in (("notebook", notebook_run), ("grader check", grader_check)):
        for model_name in MODELS:
            seconds, loss = run(model_name)
            print("overfit %-11s %-12s %5.1f s  final loss %.4f  ratio to the %g s budget %.2f"
                  % (model_name, label, seconds, loss, BUDGET_SECONDS, seconds / BUDGET_SECONDS))


if __name__ == "__main__":
    main()
