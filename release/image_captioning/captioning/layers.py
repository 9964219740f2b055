"""Fully connected layer (given code)."""


def affine_forward(x, w, b):
    """Affine map of x (N, d_1, ..., d_k) reshaped to (N, D), with w (D, M), b (M,).

    Returns out (N, M) and the cache (x, w, b).
    """
    out = x.reshape(x.shape[0], -1).dot(w) + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Gradients of affine_forward: dx (shaped like x), dw (D, M), db (M,)."""
    x, w, b = cache
    dx = dout.dot(w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T.dot(dout)
    db = dout.sum(axis=0)
    return dx, dw, db
