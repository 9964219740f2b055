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
    t = np.arange(max_len)[:, None]
    frequencies = 10000.0 ** (-np.arange(0, embed_dim, 2) / embed_dim)
    pe[:, 0::2] = np.sin(t * frequencies)
    pe[:, 1::2] = np.cos(t * frequencies)
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
    N, S, E = query.shape
    T = key.shape[1]
    d = E // num_heads

    def split(x, L):
        return x.reshape(N, L, num_heads, d).transpose(0, 2, 1, 3)   # (N, h, L, d)

    q = split(query @ params["Wq"] + params["bq"], S)
    k = split(key @ params["Wk"] + params["bk"], T)
    v = split(value @ params["Wv"] + params["bv"], T)
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d)               # (N, h, S, T)
    if attn_mask is not None:
        scores = np.where(attn_mask, scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    heads = (weights @ v).transpose(0, 2, 1, 3).reshape(N, S, E)     # heads concatenated in order
    out = heads @ params["Wo"] + params["bo"]
    cache = (query, key, value, params, q, k, v, weights, heads)
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
    query, key, value, params, q, k, v, weights, heads = cache
    N, S, E = query.shape
    T = key.shape[1]
    num_heads, d = q.shape[1], q.shape[3]
    grads = {"Wo": heads.reshape(N * S, E).T @ dout.reshape(N * S, E), "bo": dout.sum(axis=(0, 1))}
    dheads = (dout @ params["Wo"].T).reshape(N, S, num_heads, d).transpose(0, 2, 1, 3)
    dweights = dheads @ v.transpose(0, 1, 3, 2)                        # (N, h, S, T)
    dv = weights.transpose(0, 1, 3, 2) @ dheads                        # (N, h, T, d)
    dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True)) / math.sqrt(d)
    dq = dscores @ k
    dk = dscores.transpose(0, 1, 3, 2) @ q

    def merge(x, L):
        return x.transpose(0, 2, 1, 3).reshape(N, L, E)

    dx = {}
    for name, x, dproj, L in (("q", query, dq, S), ("k", key, dk, T), ("v", value, dv, T)):
        dproj = merge(dproj, L)
        grads["W" + name] = x.reshape(N * L, E).T @ dproj.reshape(N * L, E)
        grads["b" + name] = dproj.sum(axis=(0, 1))
        dx[name] = dproj @ params["W" + name].T
    dquery, dkey, dvalue = dx["q"], dx["k"], dx["v"]
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
    self_out, self_cache = multihead_attention_forward(x, x, x, attention_params(params, "self_"),
                                                       num_heads, self_mask)
    x1, ln1_cache = layernorm_forward(x + self_out, params["ln1_gamma"], params["ln1_beta"])
    cross_out, cross_cache = multihead_attention_forward(x1, memory, memory, attention_params(params, "cross_"),
                                                         num_heads)
    x2, ln2_cache = layernorm_forward(x1 + cross_out, params["ln2_gamma"], params["ln2_beta"])
    hidden = np.maximum(0, x2 @ params["W1"] + params["b1"])
    ffn_out = hidden @ params["W2"] + params["b2"]
    out, ln3_cache = layernorm_forward(x2 + ffn_out, params["ln3_gamma"], params["ln3_beta"])
    cache = (self_cache, ln1_cache, cross_cache, ln2_cache, x2, hidden, params["W1"], params["W2"], ln3_cache)
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
    self_cache, ln1_cache, cross_cache, ln2_cache, x2, hidden, W1, W2, ln3_cache = cache
    grads = {}
    dres3, grads["ln3_gamma"], grads["ln3_beta"] = layernorm_backward(dout, ln3_cache)
    F = hidden.shape[-1]
    grads["W2"] = hidden.reshape(-1, F).T @ dres3.reshape(-1, dres3.shape[-1])
    grads["b2"] = dres3.sum(axis=(0, 1))
    dhidden = (dres3 @ W2.T) * (hidden > 0)
    grads["W1"] = x2.reshape(-1, x2.shape[-1]).T @ dhidden.reshape(-1, F)
    grads["b1"] = dhidden.sum(axis=(0, 1))
    dx2 = dres3 + dhidden @ W1.T
    dres2, grads["ln2_gamma"], grads["ln2_beta"] = layernorm_backward(dx2, ln2_cache)
    dq, dk, dv, cross_grads = multihead_attention_backward(dres2, cross_cache)
    dmemory = dk + dv
    dx1 = dres2 + dq
    dres1, grads["ln1_gamma"], grads["ln1_beta"] = layernorm_backward(dx1, ln1_cache)
    dq, dk, dv, self_grads = multihead_attention_backward(dres1, self_cache)
    dx = dres1 + dq + dk + dv
    for name in ATTENTION_KEYS:
        grads["self_" + name] = self_grads[name]
        grads["cross_" + name] = cross_grads[name]
    return dx, dmemory, grads
