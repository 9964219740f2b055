"""Hidden checks: other shapes, N=1, T=1, repeated words, float32, padded captions.

Expected values come from the reference implementation (the check's own probe run on it), or
from numerical gradients of the reference forward pass. This file is sent to the sandboxed child
as text and never ships to students.
"""


def hidden_checks(C):
    """The hidden Check list, built from the public checks module C (captioning/checks.py)."""
    import numpy as np

    def same(unit, name, run, tol=1e-6, compare="close"):
        """A check whose expected values are the reference's outputs on the same inputs."""
        return C.Check(unit, name, run, run, tol=tol, compare=compare, public=False)

    def forward(unit, layer, name, seed, shapes, dtype=np.float64, tol=1e-6):
        return same(unit, name, C.forward_probe(layer, C.random_inputs(seed, shapes, dtype)), tol)

    def backward(unit, layer, name, seed, shapes, dtype=np.float64, tol=1e-6):
        inputs = C.random_inputs(seed, shapes, dtype)
        return C.Check(unit, name, C.backward_probe(layer, inputs, seed), C.backward_probe(layer, inputs, seed),
                       tol=tol, public=False, backward_of=(layer, inputs, seed))

    def numerical(unit, layer, seed, shapes, tol):
        return C.gradient_check(unit, layer, seed, shapes, tol, public=False,
                                name="numerical gradient check, hidden seed")

    lstm_step = C.lstm_step_shapes
    repeated = np.array([[1, 1, 4, 1], [4, 0, 1, 1], [6, 6, 6, 6]])
    same_word = np.full((4, 5), 3)
    W7 = C.random_inputs(41, {"W": (7, 3)})["W"]

    return [
        forward("rnn_step_forward", "rnn_step", "random inputs, N=1", 11, C.rnn_shapes(1, 3, 7)),
        forward("rnn_step_forward", "rnn_step", "float32 inputs", 12, C.rnn_shapes(4, 6, 5), np.float32, 1e-4),
        numerical("rnn_step_backward", "rnn_step", 13, C.rnn_shapes(1, 3, 2), 1e-6),
        backward("rnn_step_backward", "rnn_step", "float32 inputs", 14, C.rnn_shapes(3, 4, 5), np.float32, 1e-3),
        forward("rnn_forward", "rnn", "random inputs, T=1", 15, C.rnn_shapes(3, 4, 5, T=1)),
        forward("rnn_forward", "rnn", "random inputs, N=1, T=7", 16, C.rnn_shapes(1, 2, 3, T=7)),
        numerical("rnn_backward", "rnn", 17, C.rnn_shapes(3, 2, 3, T=4), 1e-6),
        backward("rnn_backward", "rnn", "random inputs, T=1", 18, C.rnn_shapes(2, 3, 4, T=1)),
        same("word_embedding_forward", "repeated words", C.embedding_forward_probe(repeated, W7)),
        same("word_embedding_forward", "N=1, T=1", C.embedding_forward_probe(np.array([[5]]), W7)),
        C.Check("word_embedding_backward", "one word repeated everywhere",
                C.embedding_backward_probe(same_word, W7, 19), C.embedding_numerical_gradient(same_word, W7, 19),
                tol=1e-8, public=False),
        same("word_embedding_backward", "repeated words", C.embedding_backward_probe(repeated, W7, 20)),
        forward("lstm_step_forward", "lstm_step", "random inputs, N=1", 21, lstm_step(1, 3, 4)),
        forward("lstm_step_forward", "lstm_step", "float32 inputs", 22, lstm_step(3, 5, 4), np.float32, 1e-4),
        numerical("lstm_step_backward", "lstm_step", 23, lstm_step(2, 3, 4), 1e-5),
        backward("lstm_step_backward", "lstm_step", "float32 inputs", 24, lstm_step(3, 4, 5), np.float32, 1e-3),
        forward("lstm_forward", "lstm", "random inputs, T=1", 25, C.rnn_shapes(3, 4, 5, T=1, gates=4)),
        forward("lstm_forward", "lstm", "random inputs, N=1, T=6", 26, C.rnn_shapes(1, 2, 3, T=6, gates=4)),
        numerical("lstm_backward", "lstm", 27, C.rnn_shapes(2, 3, 4, T=5, gates=4), 1e-5),
        backward("lstm_backward", "lstm", "random inputs, T=1", 28, C.rnn_shapes(2, 3, 4, T=1, gates=4)),
    ] + [check for cell in ("rnn", "lstm") for check in (
        same("CaptioningRNN.loss (%s)" % cell, "captions padded with <NULL> (masked loss and gradients)",
             C.model_grad_probe(cell, 29, C.SAMPLE_VOCAB, N=4, T=6, pad=True)),
        same("CaptioningRNN.loss (%s)" % cell, "float32 model, N=1",
             C.model_grad_probe(cell, 30, C.SAMPLE_VOCAB, N=1, T=5, dtype=np.float32), tol=1e-2),
        same("CaptioningRNN.sample (%s)" % cell, "greedy decode, hidden parameters",
             C.sample_probe(cell, 31, N=6, max_length=12, scale=2.0), compare="tokens"),
        same("CaptioningRNN.sample (%s)" % cell, "greedy decode, N=1, max_length=3",
             C.sample_probe(cell, 32, N=1, max_length=3, scale=2.0), compare="tokens"),
    )]
