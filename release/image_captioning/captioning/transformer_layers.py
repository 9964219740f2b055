"""Layers of a Transformer captioning decoder: positional encodings, multi-head attention, layer
normalization and the decoder layer, each with its backward pass.

You implement the positional encoding, multi-head attention and the decoder layer (forward and
backward); layer normalization is given. This module only uses numpy.
"""
import math

import numpy as np

ATTENTION_KEYS = ("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo")


def positional_encoding(max_len, embed_dim):
    """Sinusoidal positional encodings (Vaswani et al., 2017).

    Position t gets a vector of embed_dim numbers: for i = 0, 1, ..., embed_dim / 2 - 1,
        PE[t, 2i]     = sin(t * 10000^(-2i / embed_dim))
        PE[t, 2i + 1] = cos(t * 10000^(-2i / embed_dim))

    Inputs:
    - max_len: Number of positions, 0 ... max_len - 1.
    - embed_dim: Size E of each encoding (even).

    Returns:
    - pe: The encodings, a float64 array of shape (max_len, embed_dim); pe[t] is position t's.
    """
    pe = np.zeros((max_len, embed_dim))
    # TODO: fill the even columns with sines and the odd ones with cosines (no loop needed).
    # YOUR CODE HERE
    raise NotImplementedError()
    return pe


def multihead_attention_forward(query, key, value, params, num_heads, attn_mask=None):
    """Multi-head scaled dot-product attention.

    Every one of the S query vectors attends to the T key/value vectors of the same sequence. The
    projected queries, keys and values (size E) are split into num_heads heads of size
    d = E / num_heads: head j uses columns j*d ... (j+1)*d - 1, i.e. a reshape to
    (N, L, num_heads, d). In each head,
        scores = q k^T / sqrt(d)            (S, T)
        A = softmax(scores) over the T keys (masked positions get -inf first, hence weight 0)
        head = A v                          (S, d)
    The heads are concatenated in order (back to size E) and projected by Wo, bo.

    Inputs:
    - query: Query vectors, of shape (N, S, E).
    - key: Key vectors, of shape (N, T, E).
    - value: Value vectors, of shape (N, T, E).
    - params: Dictionary of the projections, used as x W + b: Wq, Wk, Wv, Wo of shape (E, E) and
      bq, bk, bv, bo of shape (E,).
    - num_heads: Number h of heads; E is a multiple of h.
    - attn_mask: Booleans of shape (S, T), or None. attn_mask[i, j] is True when query i may attend
      to key j (False: it may not). None means every query may attend to every key.

    Returns a tuple of:
    - out: The attention output, of shape (N, S, E).
    - cache: Whatever multihead_attention_backward needs, in a form of your choosing.
    """
    # TODO: project, split into heads, scaled scores, mask, softmax over the keys, weighted sum of
    # the values, merge the heads, output projection.
    # YOUR CODE HERE
    raise NotImplementedError()
    return out, cache


def multihead_attention_backward(dout, cache):
    """Backward pass of multihead_attention_forward.

    Inputs:
    - dout: Upstream gradient of the output, of shape (N, S, E).
    - cache: The cache multihead_attention_forward returned.

    Returns a tuple of:
    - dquery: Gradient with respect to query, of shape (N, S, E).
    - dkey: Gradient with respect to key, of shape (N, T, E).
    - dvalue: Gradient with respect to value, of shape (N, T, E).
    - grads: Dictionary with the keys of params (Wq, ..., bo), each the gradient with respect to
      that parameter (same shape as the parameter).
    """
    # TODO: go back through the output projection, the merge of the heads, the weighted sum, the
    # softmax (dscores = A * (dA - sum(dA * A) over the keys)), the scaling and the projections.
    # YOUR CODE HERE
    raise NotImplementedError()
    return dquery, dkey, dvalue, grads


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Layer normalization over the last axis (given code).

    Each vector x[..., :] is shifted and scaled to mean 0 and variance 1, then multiplied by gamma
    and shifted by beta.

    Inputs:
    - x: Data, of shape (..., E).
    - gamma, beta: Scale and shift, of shape (E,).
    - eps: Added to the variance for numerical stability.

    Returns a tuple of:
    - out: Normalized data, of the shape of x.
    - cache: What layernorm_backward needs.
    """
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    inv_std = 1.0 / np.sqrt((centred ** 2).mean(axis=-1, keepdims=True) + eps)
    x_hat = centred * inv_std
    return gamma * x_hat + beta, (x_hat, inv_std, gamma)


def layernorm_backward(dout, cache):
    """Backward pass of layernorm_forward (given code): dx (shape of x), dgamma, dbeta (E,)."""
    x_hat, inv_std, gamma = cache
    axes = tuple(range(dout.ndim - 1))
    dgamma = (dout * x_hat).sum(axis=axes)
    dbeta = dout.sum(axis=axes)
    dx_hat = dout * gamma
    dx = inv_std * (dx_hat - dx_hat.mean(axis=-1, keepdims=True)
                    - x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True))
    return dx, dgamma, dbeta


def attention_params(params, prefix):
    """The attention parameters {Wq, ..., bo} stored under params[prefix + name] (given code)."""
    return {name: params[prefix + name] for name in ATTENTION_KEYS}


def decoder_layer_forward(x, memory, params, num_heads, self_mask):
    """One post-norm Transformer decoder layer (no dropout).

        x1 = LN1(x + SelfAttention(x, x, x, self_mask))
        x2 = LN2(x1 + CrossAttention(x1, memory, memory))       (no mask)
        out = LN3(x2 + relu(x2 W1 + b1) W2 + b2)

    Inputs:
    - x: The caption's vectors, of shape (N, S, E).
    - memory: What the cross-attention attends to (here the projected image), of shape (N, T, E).
    - params: Dictionary with self_Wq ... self_bo and cross_Wq ... cross_bo (the two attentions'
      parameters, see attention_params), ln1_gamma, ln1_beta, ln2_gamma, ln2_beta, ln3_gamma,
      ln3_beta of shape (E,), W1 (E, F), b1 (F,), W2 (F, E), b2 (E,).
    - num_heads: Number of heads of both attentions.
    - self_mask: Booleans of shape (S, S) for the self-attention (True: may attend), or None.

    Returns a tuple of:
    - out: Output vectors, of shape (N, S, E).
    - cache: Whatever decoder_layer_backward needs, in a form of your choosing.
    """
    # TODO: the three sublayers above, each with its residual connection and layer norm.
    # YOUR CODE HERE
    raise NotImplementedError()
    return out, cache


def decoder_layer_backward(dout, cache):
    """Backward pass of decoder_layer_forward.

    Inputs:
    - dout: Upstream gradient of the output, of shape (N, S, E).
    - cache: The cache decoder_layer_forward returned.

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, S, E).
    - dmemory: Gradient with respect to memory, of shape (N, T, E).
    - grads: Dictionary with the keys of params, each the gradient with respect to that parameter.
    """
    # TODO: back through the three sublayers in reverse order. A residual connection adds the
    # gradient of its two branches; x feeds the self-attention as query, key and value.
    # YOUR CODE HERE
    raise NotImplementedError()
    return dx, dmemory, grads
