"""Hidden checks: other shapes, N=1, T=1, repeated words, float32, padded captions, other beam
sizes; for the Transformer also one head, S != T, no mask and padding masks. Every backward unit
and loss unit also has a gate (README, rule 7): large inputs, where a backward pass by numerical gradients
(two forward passes per input element) cannot finish in the time limit an analytic one fits in.

Expected values come from the reference implementation (the check's own probe run on it), or
from numerical gradients of the reference forward pass. This file is sent to the sandboxed child
as text and never ships to students.
"""
import dataclasses

ANALYTIC = "large inputs, in the time of an analytic backward pass"


def gate(check, **changes):
    """The check made its unit's gate: the unit earns nothing unless it passes."""
    return dataclasses.replace(check, gate=True, **changes)


def hidden_checks(C):
    """The hidden Check list, built from the public checks module C (captioning/checks.py)."""
    import numpy as np

    def same(unit, name, run, tol=1e-6, compare="close"):
        """A check whose expected values are the reference's outputs on the same inputs."""
        return C.Check(unit, name, run, run, tol=tol, compare=compare, public=False)

    def forward(unit, layer, name, seed, shapes, dtype=np.float64, tol=1e-6):
        return same(unit, name, C.forward_probe(layer, C.random_inputs(seed, shapes, dtype)), tol)

    def backward(unit, layer, name, seed, shapes, dtype=np.float64, tol=1e-6, make=C.random_inputs):
        inputs = make(seed, shapes, dtype)
        return C.Check(unit, name, C.backward_probe(layer, inputs, seed), C.backward_probe(layer, inputs, seed),
                       tol=tol, public=False, backward_of=(layer, inputs, seed))

    def numerical(unit, layer, seed, shapes, tol):
        return C.gradient_check(unit, layer, seed, shapes, tol, public=False,
                                name="numerical gradient check, hidden seed")

    lstm_step = C.lstm_step_shapes
    repeated = np.array([[1, 1, 4, 1], [4, 0, 1, 1], [6, 6, 6, 6]])
    same_word = np.full((4, 5), 3)
    W7 = C.random_inputs(41, {"W": (7, 3)})["W"]
    scaled = C.transformer_inputs  # matrices scaled as an initialisation would: no saturated tanh
    words = np.random.RandomState(95).randint(1000, size=(32, 32))
    W_large = C.random_inputs(96, {"W": (1000, 256)})["W"]

    return [
        forward("rnn_step_forward", "rnn_step", "random inputs, N=1", 11, C.rnn_shapes(1, 3, 7)),
        forward("rnn_step_forward", "rnn_step", "float32 inputs", 12, C.rnn_shapes(4, 6, 5), np.float32, 1e-4),
        numerical("rnn_step_backward", "rnn_step", 13, C.rnn_shapes(1, 3, 2), 1e-6),
        backward("rnn_step_backward", "rnn_step", "float32 inputs", 14, C.rnn_shapes(3, 4, 5), np.float32, 1e-3),
        gate(backward("rnn_step_backward", "rnn_step", ANALYTIC, 91, C.rnn_shapes(64, 128, 256), make=scaled)),
        forward("rnn_forward", "rnn", "random inputs, T=1", 15, C.rnn_shapes(3, 4, 5, T=1)),
        forward("rnn_forward", "rnn", "random inputs, N=1, T=7", 16, C.rnn_shapes(1, 2, 3, T=7)),
        numerical("rnn_backward", "rnn", 17, C.rnn_shapes(3, 2, 3, T=4), 1e-6),
        backward("rnn_backward", "rnn", "random inputs, T=1", 18, C.rnn_shapes(2, 3, 4, T=1)),
        gate(backward("rnn_backward", "rnn", ANALYTIC, 92, C.rnn_shapes(32, 64, 128, T=20), make=scaled)),
        same("word_embedding_forward", "repeated words", C.embedding_forward_probe(repeated, W7)),
        same("word_embedding_forward", "N=1, T=1", C.embedding_forward_probe(np.array([[5]]), W7)),
        C.Check("word_embedding_backward", "one word repeated everywhere",
                C.embedding_backward_probe(same_word, W7, 19), C.embedding_numerical_gradient(same_word, W7, 19),
                tol=1e-8, public=False),
        same("word_embedding_backward", "repeated words", C.embedding_backward_probe(repeated, W7, 20)),
        gate(same("word_embedding_backward", ANALYTIC, C.embedding_backward_probe(words, W_large, 97))),
        forward("lstm_step_forward", "lstm_step", "random inputs, N=1", 21, lstm_step(1, 3, 4)),
        forward("lstm_step_forward", "lstm_step", "float32 inputs", 22, lstm_step(3, 5, 4), np.float32, 1e-4),
        numerical("lstm_step_backward", "lstm_step", 23, lstm_step(2, 3, 4), 1e-5),
        backward("lstm_step_backward", "lstm_step", "float32 inputs", 24, lstm_step(3, 4, 5), np.float32, 1e-3),
        gate(backward("lstm_step_backward", "lstm_step", ANALYTIC, 93, lstm_step(64, 64, 128), make=scaled)),
        forward("lstm_forward", "lstm", "random inputs, T=1", 25, C.rnn_shapes(3, 4, 5, T=1, gates=4)),
        forward("lstm_forward", "lstm", "random inputs, N=1, T=6", 26, C.rnn_shapes(1, 2, 3, T=6, gates=4)),
        numerical("lstm_backward", "lstm", 27, C.rnn_shapes(2, 3, 4, T=5, gates=4), 1e-5),
        backward("lstm_backward", "lstm", "random inputs, T=1", 28, C.rnn_shapes(2, 3, 4, T=1, gates=4)),
        gate(backward("lstm_backward", "lstm", ANALYTIC, 94, C.rnn_shapes(16, 32, 64, T=20, gates=4), make=scaled)),
    ] + [check for cell in ("rnn", "lstm") for check in (
        same("CaptioningRNN.loss (%s)" % cell, "captions padded with <NULL> (masked loss and gradients)",
             C.model_grad_probe(cell, 29, C.SAMPLE_VOCAB, N=4, T=6, pad=True)),
        same("CaptioningRNN.loss (%s)" % cell, "float32 model, N=1",
             C.model_grad_probe(cell, 30, C.SAMPLE_VOCAB, N=1, T=5, dtype=np.float32), tol=1e-2),
        gate(same("CaptioningRNN.loss (%s)" % cell, ANALYTIC,
                  C.model_grad_probe(cell, 33, C.SAMPLE_VOCAB, N=8, T=13, pad=True, D=32, W=32,
                                     H={"rnn": 256, "lstm": 128}[cell], scale=0.1))),
        same("CaptioningRNN.sample (%s)" % cell, "greedy decode, hidden parameters",
             C.sample_probe(cell, 31, N=6, max_length=12, scale=2.0), compare="tokens"),
        same("CaptioningRNN.sample (%s)" % cell, "greedy decode, N=1, max_length=3",
             C.sample_probe(cell, 32, N=1, max_length=3, scale=2.0), compare="tokens"),
    )] + [
        same("CaptioningRNN.beam_search", "beam_size=3, lstm, hidden parameters",
             C.sample_probe("lstm", 45, N=6, max_length=12, scale=2.0, beam_size=3), compare="tokens"),
        same("CaptioningRNN.beam_search", "beam_size=5, rnn, hidden parameters",
             C.sample_probe("rnn", 41, N=6, max_length=12, scale=2.0, beam_size=5), compare="tokens"),
        same("CaptioningRNN.beam_search", "beam_size=2, N=1, max_length=4",
             C.sample_probe("rnn", 40, N=1, max_length=4, scale=2.0, beam_size=2), compare="tokens"),
        same("CaptioningRNN.beam_search", "beam_size=2, lstm, max_length=5",
             C.sample_probe("lstm", 37, N=5, max_length=5, scale=2.0, beam_size=2), compare="tokens"),
    ] + transformer_hidden_checks(C, same)


def transformer_hidden_checks(C, same):
    """The Transformer part: other shapes, one head, S != T, no mask, padding masks, float32, N=1, T=1."""
    import numpy as np

    def pe(name, max_len, dim):
        return same("positional_encoding", name, C.positional_encoding_probe(max_len, dim), tol=1e-7)

    def forward(unit, layer, name, seed, shapes, dtype=np.float64, tol=1e-6):
        return same(unit, name, C.forward_probe(layer, C.transformer_inputs(seed, shapes, dtype)), tol)

    def backward(unit, layer, name, seed, shapes, dtype=np.float64, tol=1e-6):
        inputs = C.transformer_inputs(seed, shapes, dtype)
        return C.Check(unit, name, C.backward_probe(layer, inputs, seed), C.backward_probe(layer, inputs, seed),
                       tol=tol, atol=1e-9 if dtype == np.float64 else 1e-5, public=False,
                       backward_of=(layer, inputs, seed))

    def numerical(unit, layer, name, seed, shapes, tol=1e-5):
        return C.transformer_gradient_check(unit, layer, seed, shapes, tol, public=False,
                                            name="numerical gradient check, hidden seed, " + name)

    mha, mha_b = "multihead_attention_forward", "multihead_attention_backward"
    dec, dec_b = "decoder_layer_forward", "decoder_layer_backward"
    loss, sample = "CaptioningTransformer.loss", "CaptioningTransformer.sample"
    beam = "CaptioningTransformer.beam_search"
    A, D = C.attention_shapes, C.decoder_shapes
    return [
        pe("50 positions, 16 dimensions", 50, 16),
        pe("one position", 1, 4),
        pe("7 positions, 2 dimensions", 7, 2),
        forward(mha, ("attention", 1, None), "one head, S != T, no mask", 41, A(2, 3, 5, 6)),
        forward(mha, ("attention", 4, "padding"), "4 heads, padding mask", 42, A(3, 4, 4, 8)),
        forward(mha, ("attention", 2, "causal"), "float32 inputs", 43, A(2, 4, 4, 8), np.float32, 1e-4),
        forward(mha, ("attention", 2, None), "N=1, S=1, T=1", 44, A(1, 1, 1, 4)),
        numerical(mha_b, ("attention", 1, None), "one head, S != T, no mask", 45, A(2, 2, 3, 4)),
        numerical(mha_b, ("attention", 4, "padding"), "4 heads, padding mask", 46, A(2, 3, 4, 8)),
        backward(mha_b, ("attention", 2, "causal"), "float32 inputs", 47, A(2, 3, 3, 4), np.float32, 1e-3),
        backward(mha_b, ("attention", 2, None), "N=1, S=1, T=1", 48, A(1, 1, 1, 4)),
        gate(backward(mha_b, ("attention", 4, "causal"), ANALYTIC, 49, A(4, 32, 32, 128))),
        forward(dec, ("decoder", 1, "causal"), "one head, 3 memory tokens", 51, D(2, 4, 3, 6, 10)),
        forward(dec, ("decoder", 2, None), "no self mask", 52, D(3, 3, 2, 8, 8)),
        forward(dec, ("decoder", 4, "causal"), "float32 inputs", 53, D(2, 5, 1, 8, 16), np.float32, 1e-4),
        forward(dec, ("decoder", 2, "causal"), "N=1, S=1", 54, D(1, 1, 1, 4, 6)),
        numerical(dec_b, ("decoder", 1, "causal"), "one head, 3 memory tokens", 55, D(2, 3, 3, 4, 6)),
        numerical(dec_b, ("decoder", 2, None), "no self mask", 56, D(1, 3, 2, 6, 6)),
        backward(dec_b, ("decoder", 2, "causal"), "float32 inputs", 57, D(2, 3, 1, 8, 8), np.float32, 1e-2),
        backward(dec_b, ("decoder", 2, "causal"), "N=1, S=1", 58, D(1, 1, 1, 4, 6)),
        gate(backward(dec_b, ("decoder", 4, "causal"), ANALYTIC, 59, D(4, 16, 2, 96, 192))),
        C.Check(loss, "captions padded with <NULL> (masked loss and gradients)",
                C.transformer_grad_probe(61, C.SAMPLE_VOCAB, N=4, T=6, pad=True),
                C.transformer_grad_probe(61, C.SAMPLE_VOCAB, N=4, T=6, pad=True), atol=1e-9, public=False),
        C.Check(loss, "one layer, one head, T=1",
                C.transformer_grad_probe(62, C.SAMPLE_VOCAB, N=3, T=2, num_heads=1, num_layers=1),
                C.transformer_grad_probe(62, C.SAMPLE_VOCAB, N=3, T=2, num_heads=1, num_layers=1),
                atol=1e-9, public=False),
        C.Check(loss, "float32 model, N=1",  # float32 rounding: near-zero gradients (the key biases') by atol
                C.transformer_grad_probe(63, C.SAMPLE_VOCAB, N=1, T=5, dtype=np.float32),
                C.transformer_grad_probe(63, C.SAMPLE_VOCAB, N=1, T=5, dtype=np.float32), tol=1e-2, atol=1e-4,
                public=False),
        gate(same(loss, ANALYTIC, C.transformer_grad_probe(68, C.SAMPLE_VOCAB, N=8, T=13, pad=True, input_dim=32,
                                                            wordvec_dim=64, ffn_dim=128)), atol=1e-9),
        same(sample, "greedy decode, hidden parameters",
             C.transformer_sample_probe(64, N=6, max_length=12, scale=0.5), compare="tokens"),
        same(sample, "greedy decode, one layer, one head",
             C.transformer_sample_probe(65, N=5, max_length=10, scale=0.5, num_heads=1, num_layers=1),
             compare="tokens"),
        same(sample, "greedy decode, N=1, max_length=3",
             C.transformer_sample_probe(66, N=1, max_length=3, scale=0.5), compare="tokens"),
        same(beam, "beam_size=4, hidden parameters",
             C.transformer_sample_probe(67, N=6, max_length=12, beam_size=4), compare="tokens"),
        same(beam, "beam_size=2, one layer, one head",
             C.transformer_sample_probe(73, N=5, max_length=10, beam_size=2, num_heads=1, num_layers=1),
             compare="tokens"),
        same(beam, "beam_size=3, N=3, max_length=6",
             C.transformer_sample_probe(81, N=3, max_length=6, beam_size=3), compare="tokens"),
    ]
