"""Hidden checks: other shapes, N=1, T=1, repeated words, float32, padded captions, other beam
sizes; for the Transformer also one head, S != T, no mask and padding masks. Every backward unit
and loss unit also has a gate (README, rule 7): large inputs, where a backward pass by numerical gradients
(two forward passes per input element) cannot finish in the time limit an analytic one fits in.

Their inputs come from the seed of each grade (a new one every time), their expected values from
the reference implementation at grade time (the same probe run on it, or numerical gradients of
the reference forward pass). This file never leaves the grader: the sandboxed child gets each
hidden check as a public probe's name and its arguments (arrays, numbers; Check.probe).
"""
import dataclasses

from .netviz_hidden import netviz_hidden_checks

ANALYTIC = "large inputs, in the time of an analytic backward pass"


def gate(check, **changes):
    """The check made its unit's gate: the unit earns nothing unless it passes."""
    return dataclasses.replace(check, gate=True, **changes)


def hidden_checks(C, seed):
    """The hidden Check list of one grade, built with the public checks module C (captioning/checks.py)."""
    import numpy as np

    def s(n):
        """The n-th seed of this grade."""
        return (seed + 1000003 * n) % (1 << 31)

    def same(unit, name, probe, *args, tol=1e-6, atol=1e-9, compare="close", **kwargs):
        """A check whose expected values are the reference's outputs on the same inputs."""
        return C.probe_check(unit, name, (probe, args, kwargs), tol=tol, atol=atol, compare=compare, public=False)

    def forward(unit, layer, name, n, shapes, dtype=np.float64, tol=1e-6):
        atol = 1e-9 if dtype == np.float64 else 1e-5
        return same(unit, name, "forward_probe", layer, C.random_inputs(s(n), shapes, dtype), tol=tol, atol=atol)

    def backward(unit, layer, name, n, shapes, dtype=np.float64, tol=1e-6, make=C.random_inputs):
        atol = 1e-9 if dtype == np.float64 else 1e-5
        return same(unit, name, "backward_probe", layer, make(s(n), shapes, dtype), s(n), tol=tol, atol=atol)

    def gradients(unit, layer, n, shapes, tol):
        """Gradients on random inputs against the reference's (not numerical ones: with a new seed
        each grade, a ReLU kink within h of an input would now and then fail a correct pass)."""
        return backward(unit, layer, "gradients on random inputs", n, shapes, tol=tol)

    lstm_step = C.lstm_step_shapes
    repeated = np.array([[1, 1, 4, 1], [4, 0, 1, 1], [6, 6, 6, 6]])
    same_word = np.full((4, 5), 3)
    W7 = C.random_inputs(s(41), {"W": (7, 3)})["W"]
    scaled = C.transformer_inputs  # matrices scaled as an initialisation would: no saturated tanh
    words = np.random.RandomState(s(95)).randint(1000, size=(32, 32))
    W_large = C.random_inputs(s(96), {"W": (1000, 256)})["W"]

    return [
        forward("rnn_step_forward", "rnn_step", "random inputs, N=1", 11, C.rnn_shapes(1, 3, 7)),
        forward("rnn_step_forward", "rnn_step", "float32 inputs", 12, C.rnn_shapes(4, 6, 5), np.float32, 1e-4),
        gradients("rnn_step_backward", "rnn_step", 13, C.rnn_shapes(1, 3, 2), 1e-6),
        backward("rnn_step_backward", "rnn_step", "float32 inputs", 14, C.rnn_shapes(3, 4, 5), np.float32, 1e-3),
        gate(backward("rnn_step_backward", "rnn_step", ANALYTIC, 91, C.rnn_shapes(64, 128, 256), make=scaled)),
        forward("rnn_forward", "rnn", "random inputs, T=1", 15, C.rnn_shapes(3, 4, 5, T=1)),
        forward("rnn_forward", "rnn", "random inputs, N=1, T=7", 16, C.rnn_shapes(1, 2, 3, T=7)),
        gradients("rnn_backward", "rnn", 17, C.rnn_shapes(3, 2, 3, T=4), 1e-6),
        backward("rnn_backward", "rnn", "random inputs, T=1", 18, C.rnn_shapes(2, 3, 4, T=1)),
        backward("rnn_backward", "rnn", "random inputs, N=1", 34, C.rnn_shapes(1, 3, 4, T=3)),  # the loss's N=1
        gate(backward("rnn_backward", "rnn", ANALYTIC, 92, C.rnn_shapes(32, 64, 128, T=20), make=scaled)),
        same("word_embedding_forward", "repeated words", "embedding_forward_probe", repeated, W7),
        same("word_embedding_forward", "N=1, T=1", "embedding_forward_probe", np.array([[5]]), W7),
        C.probe_check("word_embedding_backward", "one word repeated everywhere",
                      ("embedding_backward_probe", (same_word, W7, s(19)), {}),
                      C.embedding_numerical_gradient(same_word, W7, s(19)), tol=1e-8, atol=1e-9, public=False),
        same("word_embedding_backward", "repeated words", "embedding_backward_probe", repeated, W7, s(20)),
        gate(same("word_embedding_backward", ANALYTIC, "embedding_backward_probe", words, W_large, s(97))),
        forward("lstm_step_forward", "lstm_step", "random inputs, N=1", 21, lstm_step(1, 3, 4)),
        forward("lstm_step_forward", "lstm_step", "float32 inputs", 22, lstm_step(3, 5, 4), np.float32, 1e-4),
        gradients("lstm_step_backward", "lstm_step", 23, lstm_step(2, 3, 4), 1e-5),
        backward("lstm_step_backward", "lstm_step", "float32 inputs", 24, lstm_step(3, 4, 5), np.float32, 1e-3),
        gate(backward("lstm_step_backward", "lstm_step", ANALYTIC, 93, lstm_step(64, 64, 128), make=scaled)),
        forward("lstm_forward", "lstm", "random inputs, T=1", 25, C.rnn_shapes(3, 4, 5, T=1, gates=4)),
        forward("lstm_forward", "lstm", "random inputs, N=1, T=6", 26, C.rnn_shapes(1, 2, 3, T=6, gates=4)),
        gradients("lstm_backward", "lstm", 27, C.rnn_shapes(2, 3, 4, T=5, gates=4), 1e-5),
        backward("lstm_backward", "lstm", "random inputs, T=1", 28, C.rnn_shapes(2, 3, 4, T=1, gates=4)),
        backward("lstm_backward", "lstm", "random inputs, N=1", 35, C.rnn_shapes(1, 3, 4, T=3, gates=4)),
        gate(backward("lstm_backward", "lstm", ANALYTIC, 94, C.rnn_shapes(16, 32, 64, T=20, gates=4), make=scaled)),
    ] + [check for cell in ("rnn", "lstm") for check in (
        same("CaptioningRNN.loss (%s)" % cell, "captions padded with <NULL> (masked loss and gradients)",
             "model_grad_probe", cell, s(29), C.SAMPLE_VOCAB, N=4, T=6, pad=True),
        same("CaptioningRNN.loss (%s)" % cell, "float32 model, N=1", "model_grad_probe", cell, s(30), C.SAMPLE_VOCAB,
             N=1, T=5, dtype="float32", tol=1e-2, atol=1e-4),
        gate(same("CaptioningRNN.loss (%s)" % cell, ANALYTIC, "model_grad_probe", cell, s(33), C.SAMPLE_VOCAB,
                  N=8, T=13, pad=True, D=32, W=32, H={"rnn": 256, "lstm": 128}[cell], scale=0.1)),
        same("CaptioningRNN.sample (%s)" % cell, "greedy decode, hidden parameters", "sample_probe", cell, s(31),
             N=6, max_length=12, scale=2.0, compare="tokens"),
        same("CaptioningRNN.sample (%s)" % cell, "greedy decode, N=1, max_length=3", "sample_probe", cell, s(32),
             N=1, max_length=3, scale=2.0, compare="tokens"),
    )] + [
        same("CaptioningRNN.beam_search", "beam_size=3, lstm, 8 models with hidden parameters", "sample_probe",
             "lstm", s(45), N=6, max_length=12, scale=2.0, beam_size=3, models=8, compare="tokens"),
        same("CaptioningRNN.beam_search", "beam_size=5, rnn, hidden parameters", "sample_probe", "rnn", s(41),
             N=6, max_length=12, scale=2.0, beam_size=5, compare="tokens"),
        same("CaptioningRNN.beam_search", "beam_size=2, N=1, max_length=4", "sample_probe", "rnn", s(40),
             N=1, max_length=4, scale=2.0, beam_size=2, compare="tokens"),
        same("CaptioningRNN.beam_search", "beam_size=2, lstm, max_length=5, 4 models", "sample_probe", "lstm", s(37),
             N=5, max_length=5, scale=2.0, beam_size=2, models=4, compare="tokens"),
    ] + transformer_hidden_checks(C, s, same) + netviz_hidden_checks(C, s, same)


def transformer_hidden_checks(C, s, same):
    """The Transformer part: other shapes, one head, S != T, no mask, padding masks, float32, N=1, T=1."""
    import numpy as np

    def pe(name, max_len, dim):
        return same("positional_encoding", name, "positional_encoding_probe", max_len, dim, tol=1e-7)

    def forward(unit, layer, name, n, shapes, dtype=np.float64, tol=1e-6):
        atol = 1e-9 if dtype == np.float64 else 1e-5
        return same(unit, name, "forward_probe", layer, C.transformer_inputs(s(n), shapes, dtype), tol=tol, atol=atol)

    def backward(unit, layer, name, n, shapes, dtype=np.float64, tol=1e-6):
        atol = 1e-9 if dtype == np.float64 else 1e-5
        return same(unit, name, "backward_probe", layer, C.transformer_inputs(s(n), shapes, dtype), s(n),
                    tol=tol, atol=atol)

    def gradients(unit, layer, name, n, shapes, tol=1e-5):
        return backward(unit, layer, "gradients, " + name, n, shapes, tol=tol)

    def model(name, n, tol=1e-6, atol=1e-9, **kwargs):
        return same(loss, name, "transformer_grad_probe", s(n), C.SAMPLE_VOCAB, tol=tol, atol=atol, **kwargs)

    def decode(unit, name, n, **kwargs):
        return same(unit, name, "transformer_sample_probe", s(n), compare="tokens", **kwargs)

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
        gradients(mha_b, ("attention", 1, None), "one head, S != T, no mask", 45, A(2, 2, 3, 4)),
        gradients(mha_b, ("attention", 4, "padding"), "4 heads, padding mask", 46, A(2, 3, 4, 8)),
        backward(mha_b, ("attention", 2, "causal"), "float32 inputs", 47, A(2, 3, 3, 4), np.float32, 1e-3),
        backward(mha_b, ("attention", 2, None), "N=1, S=1, T=1", 48, A(1, 1, 1, 4)),
        gate(backward(mha_b, ("attention", 4, "causal"), ANALYTIC, 49, A(4, 32, 32, 128))),
        forward(dec, ("decoder", 1, "causal"), "one head, 3 memory tokens", 51, D(2, 4, 3, 6, 10)),
        forward(dec, ("decoder", 2, None), "no self mask", 52, D(3, 3, 2, 8, 8)),
        forward(dec, ("decoder", 4, "causal"), "float32 inputs", 53, D(2, 5, 1, 8, 16), np.float32, 1e-4),
        forward(dec, ("decoder", 2, "causal"), "N=1, S=1", 54, D(1, 1, 1, 4, 6)),
        gradients(dec_b, ("decoder", 1, "causal"), "one head, 3 memory tokens", 55, D(2, 3, 3, 4, 6)),
        gradients(dec_b, ("decoder", 2, None), "no self mask", 56, D(1, 3, 2, 6, 6)),
        backward(dec_b, ("decoder", 2, "causal"), "float32 inputs", 57, D(2, 3, 1, 8, 8), np.float32, 1e-2),
        backward(dec_b, ("decoder", 2, "causal"), "N=1, S=1", 58, D(1, 1, 1, 4, 6)),
        gate(backward(dec_b, ("decoder", 4, "causal"), ANALYTIC, 59, D(4, 16, 2, 96, 192))),
        model("captions padded with <NULL> (masked loss and gradients)", 61, N=4, T=6, pad=True),
        model("one layer, one head, T=1", 62, N=3, T=2, num_heads=1, num_layers=1),
        # float32 rounding: near-zero gradients (the key biases') by atol
        model("float32 model, N=1", 63, tol=1e-2, atol=1e-4, N=1, T=5, dtype="float32"),
        gate(model(ANALYTIC, 68, N=8, T=13, pad=True, input_dim=32, wordvec_dim=64, ffn_dim=128)),
        decode(sample, "greedy decode, hidden parameters", 64, N=6, max_length=12, scale=0.5),
        decode(sample, "greedy decode, one layer, one head", 65, N=5, max_length=10, scale=0.5, num_heads=1,
               num_layers=1),
        decode(sample, "greedy decode, N=1, max_length=3", 66, N=1, max_length=3, scale=0.5),
        decode(beam, "beam_size=4, hidden parameters", 67, N=6, max_length=12, beam_size=4),
        decode(beam, "beam_size=2, one layer, one head", 73, N=5, max_length=10, beam_size=2, num_heads=1,
               num_layers=1),
        decode(beam, "beam_size=3, N=3, max_length=6", 81, N=3, max_length=6, beam_size=3),
    ]
