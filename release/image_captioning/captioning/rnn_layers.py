"""Layers of recurrent captioning models: vanilla RNN, LSTM, word embeddings, temporal layers.

You implement the RNN, word-embedding and LSTM functions; the temporal affine layer, the
temporal softmax loss and the sigmoid are given.
"""
import numpy as np


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One timestep of a vanilla RNN: next_h = tanh(x Wx + prev_h Wh + b).

    The minibatch holds N sequences, each input vector has D entries and the hidden state H.

    Inputs:
    - x: Input vectors for this timestep, of shape (N, D).
    - prev_h: Hidden state left by the previous timestep, of shape (N, H).
    - Wx: Weights from the input to the hidden state, of shape (D, H).
    - Wh: Weights from the previous hidden state to the next one, of shape (H, H).
    - b: Bias of the hidden state, of shape (H,).

    Returns a tuple of:
    - next_h: The new hidden state, of shape (N, H).
    - cache: Whatever rnn_step_backward needs, in a form of your choosing.
    """
    # TODO: compute next_h = tanh(x Wx + prev_h Wh + b) and keep what the backward pass needs in cache.
    # YOUR CODE HERE
    raise NotImplementedError()
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    """Backward pass of one RNN timestep (rnn_step_forward).

    Inputs:
    - dnext_h: Gradient of the loss with respect to next_h, of shape (N, H).
    - cache: The cache rnn_step_forward returned for this timestep.

    Returns a tuple of:
    - dx: Gradient with respect to the input x, of shape (N, D).
    - dprev_h: Gradient with respect to the previous hidden state prev_h, of shape (N, H).
    - dWx: Gradient with respect to the input weights Wx, of shape (D, H).
    - dWh: Gradient with respect to the hidden-to-hidden weights Wh, of shape (H, H).
    - db: Gradient with respect to the bias b, of shape (H,).
    """
    # TODO: backpropagate through tanh (its derivative is 1 - tanh^2), then through the two products.
    # YOUR CODE HERE
    raise NotImplementedError()
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    """A vanilla RNN run over a whole sequence of T timesteps.

    The input is a minibatch of N sequences of T vectors of size D; the hidden size is H. Each step
    feeds the hidden state it produces to the next one.

    Inputs:
    - x: The input sequences, of shape (N, T, D); x[:, t] is the input of timestep t.
    - h0: Hidden state before the first timestep, of shape (N, H).
    - Wx: Weights from the input to the hidden state, of shape (D, H).
    - Wh: Weights from the previous hidden state to the next one, of shape (H, H).
    - b: Bias of the hidden state, of shape (H,).

    Returns a tuple of:
    - h: The hidden state of every timestep, of shape (N, T, H); h[:, t] is the state after step t.
    - cache: Whatever rnn_backward needs, in a form of your choosing.
    """
    # TODO: loop over time, calling rnn_step_forward; store every hidden state in h.
    # YOUR CODE HERE
    raise NotImplementedError()
    return h, cache


def rnn_backward(dh, cache):
    """Backward pass of a vanilla RNN over a whole sequence (rnn_forward).

    Inputs:
    - dh: Upstream gradient of every hidden state, of shape (N, T, H). It holds only what reaches
      h[:, t] from the layers above (e.g. the word scores), not the gradient that flows back from
      timestep t + 1 to timestep t: computing that one is your job.
    - cache: The cache rnn_forward returned.

    Returns a tuple of:
    - dx: Gradient with respect to the input sequences x, of shape (N, T, D).
    - dh0: Gradient with respect to the initial hidden state h0, of shape (N, H).
    - dWx: Gradient with respect to the input weights Wx, of shape (D, H).
    - dWh: Gradient with respect to the hidden-to-hidden weights Wh, of shape (H, H).
    - db: Gradient with respect to the bias b, of shape (H,).
    """
    # TODO: walk back in time; each step receives dh[:, t] plus the gradient from the step after it.
    # YOUR CODE HERE
    raise NotImplementedError()
    return dx, dh0, dWx, dWh, db


def word_embedding_forward(x, W):
    """Word embedding: turn word indices into vectors by looking each one up in W.

    A minibatch of N sequences of T words; the vocabulary has V words, each with a vector of size D.

    Inputs:
    - x: Integer word indices, of shape (N, T); every entry lies in [0, V).
    - W: The word vectors, of shape (V, D); row i is the vector of word i.

    Returns a tuple of:
    - out: The vector of every input word, of shape (N, T, D): out[n, t] = W[x[n, t]].
    - cache: Whatever word_embedding_backward needs.
    """
    # TODO: index W with x (one line of numpy).
    # YOUR CODE HERE
    raise NotImplementedError()
    return out, cache


def word_embedding_backward(dout, cache):
    """Backward pass of the word embedding (word_embedding_forward).

    Word indices are integers, so only W gets a gradient. A word that appears several times in the
    minibatch receives the sum of the gradients of all its occurrences.

    Inputs:
    - dout: Upstream gradient of the looked-up vectors, of shape (N, T, D).
    - cache: The cache word_embedding_forward returned.

    Returns:
    - dW: Gradient with respect to the word vectors W, of shape (V, D).
    """
    # TODO: scatter dout into dW, accumulating repeated words (look at np.add.at).
    # YOUR CODE HERE
    raise NotImplementedError()
    return dW


def sigmoid(x):
    """Logistic sigmoid 1 / (1 + exp(-x)), computed without overflow for large |x|.

    Inputs:
    - x: A numpy array of any shape.

    Returns:
    - The sigmoid of every entry of x, an array of the same shape.
    """
    pos = x >= 0
    z = np.exp(np.where(pos, -x, x))
    return np.where(pos, 1 / (1 + z), z / (1 + z))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One timestep of an LSTM.

    The minibatch holds N sequences, each input vector has D entries and the hidden state H. The
    activation a = x Wx + prev_h Wh + b, of shape (N, 4H), splits into four blocks of H columns, in
    this order: input gate i, forget gate f, output gate o (each through a sigmoid) and block input
    g (through tanh). Then next_c = f * prev_c + i * g and next_h = o * tanh(next_c), elementwise.

    Inputs:
    - x: Input vectors for this timestep, of shape (N, D).
    - prev_h: Hidden state left by the previous timestep, of shape (N, H).
    - prev_c: Cell state left by the previous timestep, of shape (N, H).
    - Wx: Weights from the input to the four blocks, of shape (D, 4H).
    - Wh: Weights from the previous hidden state to the four blocks, of shape (H, 4H).
    - b: Bias of the four blocks, of shape (4H,).

    Returns a tuple of:
    - next_h: The new hidden state, of shape (N, H).
    - next_c: The new cell state, of shape (N, H).
    - cache: Whatever lstm_step_backward needs, in a form of your choosing.
    """
    # TODO: compute the four gates from a single activation, then next_c and next_h.
    # YOUR CODE HERE
    raise NotImplementedError()
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Backward pass of one LSTM timestep (lstm_step_forward).

    Inputs:
    - dnext_h: Gradient of the loss with respect to next_h, of shape (N, H).
    - dnext_c: Gradient of the loss with respect to next_c, of shape (N, H).
    - cache: The cache lstm_step_forward returned for this timestep.

    Returns a tuple of:
    - dx: Gradient with respect to the input x, of shape (N, D).
    - dprev_h: Gradient with respect to the previous hidden state prev_h, of shape (N, H).
    - dprev_c: Gradient with respect to the previous cell state prev_c, of shape (N, H).
    - dWx: Gradient with respect to the input weights Wx, of shape (D, 4H).
    - dWh: Gradient with respect to the hidden-to-hidden weights Wh, of shape (H, 4H).
    - db: Gradient with respect to the bias b, of shape (4H,).
    """
    # TODO: backpropagate through next_h and next_c into the four gates, then through a.
    # YOUR CODE HERE
    raise NotImplementedError()
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    """An LSTM run over a whole sequence of T timesteps.

    The input is a minibatch of N sequences of T vectors of size D; the hidden size is H. The
    initial hidden state is given; the initial cell state is zero. The cell state stays inside:
    only the hidden states are returned.

    Inputs:
    - x: The input sequences, of shape (N, T, D); x[:, t] is the input of timestep t.
    - h0: Hidden state before the first timestep, of shape (N, H).
    - Wx: Weights from the input to the four blocks, of shape (D, 4H).
    - Wh: Weights from the previous hidden state to the four blocks, of shape (H, 4H).
    - b: Bias of the four blocks, of shape (4H,).

    Returns a tuple of:
    - h: The hidden state of every timestep, of shape (N, T, H); h[:, t] is the state after step t.
    - cache: Whatever lstm_backward needs, in a form of your choosing.
    """
    # TODO: loop over time, calling lstm_step_forward, starting from h0 and a zero cell state.
    # YOUR CODE HERE
    raise NotImplementedError()
    return h, cache


def lstm_backward(dh, cache):
    """Backward pass of an LSTM over a whole sequence (lstm_forward).

    Inputs:
    - dh: Upstream gradient of every hidden state, of shape (N, T, H). As in rnn_backward, it holds
      only what reaches h[:, t] from the layers above; the gradients flowing back from timestep
      t + 1 (through both the hidden and the cell state) are yours to compute.
    - cache: The cache lstm_forward returned.

    Returns a tuple of:
    - dx: Gradient with respect to the input sequences x, of shape (N, T, D).
    - dh0: Gradient with respect to the initial hidden state h0, of shape (N, H).
    - dWx: Gradient with respect to the input weights Wx, of shape (D, 4H).
    - dWh: Gradient with respect to the hidden-to-hidden weights Wh, of shape (H, 4H).
    - db: Gradient with respect to the bias b, of shape (4H,).
    """
    # TODO: walk back in time, carrying the hidden-state and cell-state gradients between steps.
    # YOUR CODE HERE
    raise NotImplementedError()
    return dx, dh0, dWx, dWh, db


def temporal_affine_forward(x, w, b):
    """The same affine layer applied at every timestep, e.g. to turn hidden states
    into word scores.

    Inputs:
    - x: Input sequences, of shape (N, T, D).
    - w: Weights, of shape (D, M).
    - b: Bias, of shape (M,).

    Returns a tuple of:
    - out: The output at every timestep, x[:, t] w + b, of shape (N, T, M).
    - cache: What temporal_affine_backward needs.
    """
    out = x @ w + b  # @ (matmul) uses BLAS on 3-D arrays, .dot does not
    return out, (x, w, b, out)


def temporal_affine_backward(dout, cache):
    """Backward pass of temporal_affine_forward.

    Inputs:
    - dout: Upstream gradient of the outputs, of shape (N, T, M).
    - cache: The cache temporal_affine_forward returned.

    Returns a tuple of:
    - dx: Gradient with respect to the inputs x, of shape (N, T, D).
    - dw: Gradient with respect to the weights w, of shape (D, M).
    - db: Gradient with respect to the bias b, of shape (M,).
    """
    x, w, b, out = cache
    N, T, D = x.shape
    dx = dout @ w.T
    dw = x.reshape(N * T, D).T.dot(dout.reshape(N * T, -1))
    db = dout.sum(axis=(0, 1))
    return dx, dw, db


def temporal_softmax_loss(x, y, mask, verbose=False):
    """Softmax cross-entropy loss at every timestep of a minibatch of sequences.

    The losses of the timesteps that count are summed over time and averaged over the N sequences.
    The mask leaves out the padding at the end of captions shorter than T.

    Inputs:
    - x: Scores of the V vocabulary words, of shape (N, T, V).
    - y: The correct word of every timestep, of shape (N, T); every entry lies in [0, V).
    - mask: Booleans of shape (N, T); mask[n, t] says whether timestep t of sequence n counts.
    - verbose: When true, print the shape of the flattened gradient (for debugging).

    Returns a tuple of:
    - loss: The loss, a scalar.
    - dx: Gradient of the loss with respect to the scores x, of shape (N, T, V).
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
