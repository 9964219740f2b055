"""The bookkeeping step shared by the models' beam searches (given code).

A hypothesis is a partial caption with a score: the sum of the log-probabilities of its words.
The rules here make beam search deterministic, so every correct implementation finds the same
captions: a finished hypothesis (one that has produced <END>) competes with the others as it is
(extended by <NULL> at no cost), and equal scores are ordered by the lower word id, then by the
lower hypothesis index.
"""
import numpy as np


def start_beams(N, beam_size):
    """scores (N, beam_size) and finished (N, beam_size) of the first step: one hypothesis per
    image, <START> alone with score 0, and beam_size - 1 empty slots (score -inf)."""
    scores = np.full((N, beam_size), -np.inf)
    scores[:, 0] = 0.0
    return scores, np.zeros((N, beam_size), dtype=bool)


def extend_beams(scores, finished, log_probs, beam_size, null):
    """The beam_size best extensions of each image's hypotheses, best first.

    Inputs:
    - scores: Scores of the current hypotheses, of shape (N, B); -inf for an empty slot.
    - finished: Boolean array (N, B), True for hypotheses that have produced <END>.
    - log_probs: Log-probabilities of the next word for every hypothesis, of shape (N, B, V).
    - beam_size: Number K of extensions to keep for each image.
    - null: Index of <NULL>, the one word a finished hypothesis is extended by.

    Returns a tuple of integer arrays hypotheses, words (N, K) and the float array new_scores
    (N, K): the k-th best extension of image n appends words[n, k] to its hypothesis
    hypotheses[n, k] and scores new_scores[n, k].
    """
    N, B, V = log_probs.shape
    totals = scores[:, :, None] + log_probs
    totals[finished] = -np.inf
    totals[finished, null] = scores[finished]
    totals = totals.reshape(N, B * V)
    hypothesis, word = np.divmod(np.arange(B * V), V)
    order = np.lexsort((np.broadcast_to(hypothesis, totals.shape), np.broadcast_to(word, totals.shape),
                        -totals), axis=-1)[:, :beam_size]
    return hypothesis[order], word[order], np.take_along_axis(totals, order, axis=1)
