"""Layers of recurrent captioning models: vanilla RNN, LSTM, word embeddings, temporal layers.

You implement the RNN, word-embedding and LSTM functions; the temporal affine layer, the
temporal softmax loss and the sigmoid are given.
"""
import numpy as np


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One timestep of a vanilla RNN with tanh activation.

    Inputs: x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,).
    Returns next_h (N, H) and a cache of whatever the backward pass needs.
    """
    # TODO: compute next_h = tanh(x Wx + prev_h Wh + b) and keep what the backward pass needs in cache.
    # YOUR CODE HERE
    raise NotImplementedError()
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    """Backward pass of one RNN timestep.

    Inputs: dnext_h (N, H), the gradient of the loss with respect to next_h; cache from the forward.
    Returns dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    # TODO: backpropagate through tanh (its derivative is 1 - tanh^2), then through the two products.
    # YOUR CODE HERE
    raise NotImplementedError()
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    """A vanilla RNN over a whole sequence of T steps.

    Inputs: x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,).
    Returns h (N, T, H), the hidden state of every step, and a cache for the backward pass.
    """
    # TODO: loop over time, calling rnn_step_forward; store every hidden state in h.
    # YOUR CODE HERE
    raise NotImplementedError()
    return h, cache


def rnn_backward(dh, cache):
    """Backward pass of rnn_forward.

    Input: dh (N, T, H), the upstream gradient of every hidden state (not the gradient carried
    from one step to the previous one: you compute that).
    Returns dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    # TODO: walk back in time; each step receives dh[:, t] plus the gradient from the step after it.
    # YOUR CODE HERE
    raise NotImplementedError()
    return dx, dh0, dWx, dWh, db


def word_embedding_forward(x, W):
    """Look up the vectors of a minibatch of word indices.

    Inputs: x (N, T) integers in [0, V), W (V, D) the word vectors.
    Returns out (N, T, D) and a cache for the backward pass.
    """
    # TODO: index W with x (one line of numpy).
    # YOUR CODE HERE
    raise NotImplementedError()
    return out, cache


def word_embedding_backward(dout, cache):
    """Backward pass of word_embedding_forward: dW (V, D).

    A word that occurs several times in the minibatch receives the sum of all its gradients.
    """
    # TODO: scatter dout into dW, accumulating repeated words (look at np.add.at).
    # YOUR CODE HERE
    raise NotImplementedError()
    return dW


def sigmoid(x):
    """Numerically stable logistic sigmoid."""
    pos = x >= 0
    z = np.exp(np.where(pos, -x, x))
    return np.where(pos, 1 / (1 + z), z / (1 + z))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One timestep of an LSTM.

    Inputs: x (N, D), prev_h (N, H), prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,).
    The activation a = x Wx + prev_h Wh + b splits into four H-wide blocks, in this order:
    input gate i, forget gate f, output gate o (all sigmoid) and block input g (tanh).
    next_c = f * prev_c + i * g and next_h = o * tanh(next_c).
    Returns next_h (N, H), next_c (N, H) and a cache for the backward pass.
    """
    # TODO: compute the four gates from a single activation, then next_c and next_h.
    # YOUR CODE HERE
    raise NotImplementedError()
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Backward pass of one LSTM timestep.

    Inputs: dnext_h, dnext_c (N, H) and the cache from the forward pass.
    Returns dx (N, D), dprev_h (N, H), dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    # TODO: backpropagate through next_h and next_c into the four gates, then through a.
    # YOUR CODE HERE
    raise NotImplementedError()
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    """An LSTM over a whole sequence of T steps; the initial cell state is zero.

    Inputs: x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,).
    Returns h (N, T, H) and a cache for the backward pass.
    """
    # TODO: loop over time, calling lstm_step_forward, starting from h0 and a zero cell state.
    # YOUR CODE HERE
    raise NotImplementedError()
    return h, cache


def lstm_backward(dh, cache):
    """Backward pass of lstm_forward.

    Input: dh (N, T, H), the upstream gradient of every hidden state.
    Returns dx (N, T, D), dh0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    # TODO: walk back in time, carrying the hidden-state and cell-state gradients between steps.
    # YOUR CODE HERE
    raise NotImplementedError()
    return dx, dh0, dWx, dWh, db


def temporal_affine_forward(x, w, b):
    """An affine layer applied at every timestep: x (N, T, D), w (D, M), b (M,) -> out (N, T, M)."""
    out = x.dot(w) + b
    return out, (x, w, b, out)


def temporal_affine_backward(dout, cache):
    """Backward pass of temporal_affine_forward: dx (N, T, D), dw (D, M), db (M,)."""
    x, w, b, out = cache
    N, T, D = x.shape
    dx = dout.dot(w.T)
    dw = x.reshape(N * T, D).T.dot(dout.reshape(N * T, -1))
    db = dout.sum(axis=(0, 1))
    return dx, dw, db


def temporal_softmax_loss(x, y, mask, verbose=False):
    """Softmax cross-entropy at every timestep, summed over time and averaged over the minibatch.

    Inputs: scores x (N, T, V), targets y (N, T) in [0, V), boolean mask (N, T) choosing which
    timesteps count (padding does not). Returns the loss and dx (N, T, V).
    """
    N, T, V = x.shape
    x_flat = x.reshape(N * T, V)
    y_flat = y.reshape(N * T)
    mask_flat = mask.reshape(N * T)

    probs = np.exp(x_flat - np.max(x_flat, axis=1, keepdims=True))
    probs /= np.sum(probs, axis=1, keepdims=True)
    loss = -np.sum(mask_flat * np.log(probs[np.arange(N * T), y_flat])) / N
    dx_flat = probs.copy()
    dx_flat[np.arange(N * T), y_flat] -= 1
    dx_flat /= N
    dx_flat *= mask_flat[:, None]
    if verbose:
        print("dx_flat: ", dx_flat.shape)
    return loss, dx_flat.reshape(N, T, V)
