"""The reference beam search (both model families) and its given bookkeeping step.

- extend_beams orders equal scores by the lower word id, then the lower hypothesis, and carries
  finished hypotheses at no cost;
- with a beam wide enough to keep every hypothesis, beam search finds the most likely caption of
  all (found here by enumerating every caption and scoring it with the model's own loss);
- beam_size=1 is greedy decoding up to <END>, and sample(beam_size=k) is beam_search.
"""
import itertools

import numpy as np
import pytest

import source.image_captioning.captioning as reference
from source.image_captioning.captioning import checks as C
from source.image_captioning.captioning.beam_search import extend_beams

REF = C.load_impl(reference)
VOCAB = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3, "b": 4}
NULL, START, END = 0, 1, 2


def test_extend_beams_orders_ties_by_word_then_hypothesis():
    scores = np.array([[0.0, 0.0]])
    log_probs = np.log(np.full((1, 2, 4), 0.25))
    hypotheses, words, new = extend_beams(scores, np.zeros((1, 2), bool), log_probs, 3, NULL)
    assert words.tolist() == [[0, 0, 1]] and hypotheses.tolist() == [[0, 1, 0]]
    assert np.allclose(new, np.log(0.25))


def test_extend_beams_keeps_a_finished_hypothesis_as_it_is():
    scores = np.array([[-1.0, -0.5]])
    finished = np.array([[True, False]])
    log_probs = np.log(np.array([[[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]]]))
    hypotheses, words, new = extend_beams(scores, finished, log_probs, 3, NULL)
    # hypothesis 1 + word 0 (-0.857), the finished hypothesis 0 by <NULL> (-1.0), then -2.80 ties
    assert hypotheses.tolist() == [[1, 0, 1]] and words.tolist() == [[0, 0, 1]]
    assert np.allclose(new, [[-0.5 + np.log(0.7), -1.0, -0.5 + np.log(0.1)]])


def tiny_model(kind, seed):
    """A model over VOCAB that all but never emits <NULL> or <START>."""
    if kind == "transformer":
        model = C.random_transformer(REF, seed, VOCAB, input_dim=4, wordvec_dim=4, ffn_dim=6)
    else:
        model = C.random_model(REF, kind, seed, VOCAB, scale=1.5)
    model.params["b_vocab"][[NULL, START]] = -50.0  # probability ~1e-22: never in the best caption
    return model


def all_captions(max_length):
    """Every caption beam search can end with: words a/b, stopped by <END> or by max_length."""
    for length in range(1, max_length + 1):
        for words in itertools.product((3, 4), repeat=length - 1):
            yield list(words) + [END]
        if length == max_length:
            yield from (list(w) for w in itertools.product((3, 4), repeat=length))


def caption_score(model, features, caption, max_length):
    """Sum of log-probabilities of a caption: minus the model's loss on [<START>] + caption."""
    row = np.full((1, max_length + 1), NULL)
    row[0, :len(caption) + 1] = [START] + caption
    return -model.loss(features, row)[0]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "transformer"])
def test_a_wide_beam_finds_the_most_likely_caption(kind):
    max_length = 4
    for seed in range(3):
        model = tiny_model(kind, seed)
        features = np.random.RandomState(seed).randn(1, 4)
        scored = {tuple(c): caption_score(model, features, c, max_length) for c in all_captions(max_length)}
        best = max(scored, key=scored.get)
        found = model.beam_search(features, max_length=max_length, beam_size=2 ** (max_length + 1))[0].tolist()
        found = found[:found.index(END) + 1] if END in found else found
        assert tuple(found) == best, (kind, seed, found, best, scored[tuple(found)], scored[best])
        assert scored[best] > max(v for k, v in scored.items() if k != best)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "transformer"])
def test_beam_size_one_is_greedy_and_sample_dispatches_to_beam_search(kind):
    for seed in range(5):
        if kind == "transformer":
            model = C.random_transformer(REF, seed, C.SAMPLE_VOCAB, input_dim=6, scale=0.7)
        else:
            model = C.random_model(REF, kind, seed, C.SAMPLE_VOCAB, D=6, scale=2.0)
        features = np.random.RandomState(seed).randn(5, 6)
        greedy = model.sample(features, max_length=10)
        one = model.beam_search(features, max_length=10, beam_size=1)
        assert C.caption_tokens(one) == C.caption_tokens(greedy)
        for row in one.tolist():  # <NULL> after <END>
            assert END not in row or set(row[row.index(END) + 1:]) <= {NULL}
        assert np.array_equal(model.sample(features, max_length=10, beam_size=3),
                              model.beam_search(features, max_length=10, beam_size=3))
