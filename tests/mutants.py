"""Submissions for the autograder's own tests, built as patches of the answer key.

A submission is a copy of source/image_captioning/captioning with some edits applied (Patch, Body,
Append: autograder/mistakes.py).

MUTANTS are the typical student mistakes of autograder/mistakes.py (the corpus the grader's
diagnosis shares), each with the units it must lose points on; ALTERNATIVES are correct
implementations written differently, which must get full marks.
"""
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from autograder.course import RELEASE_DIR, SOLUTIONS_DIR, SOURCE_DIR
from autograder.mistakes import (
    BEAM,
    BEGIN,
    DEC,
    DEC_B,
    FOOLING,
    LAYERS,
    LSTM_LOSS,
    LSTM_SAMPLE,
    LSTM_STEP_DICT_BACKWARD,
    LSTM_STEP_DICT_FORWARD,
    MHA,
    MHA_B,
    MISTAKES,
    MODEL,
    NV,
    RNN_LOSS,
    RNN_SAMPLE,
    SALIENCY,
    STEP,
    T_BEAM,
    T_LAYERS,
    T_LOSS,
    T_MODEL,
    T_OVERFIT,
    T_SAMPLE,
    Append,
    Body,
    Patch,
)
from autograder.units import UNITS

ROOT = Path(__file__).resolve().parents[1]
SOURCE = SOURCE_DIR
RELEASE = RELEASE_DIR
SOLUTIONS = SOLUTIONS_DIR
# What the tests use of the corpus's names, re-exported (M.Patch, M.LAYERS, M.MHA, ...)
__all__ = ["Append", "Body", "Patch", "BEAM", "DEC", "DEC_B", "LAYERS", "LSTM_LOSS", "LSTM_SAMPLE", "MHA", "MHA_B",
           "MODEL", "RNN_LOSS", "RNN_SAMPLE", "T_BEAM", "T_LAYERS", "T_LOSS", "T_MODEL", "T_OVERFIT", "T_SAMPLE"]


@dataclass(frozen=True)
class Submission:
    name: str
    edits: tuple
    lost: frozenset = frozenset()   # units that must lose points (empty: full marks)
    units: tuple = None             # units to grade (None: test_corpus.NUMPY_UNITS)
    what: str = ""

    def build(self, dest):
        """dest/captioning: the answer key with the edits applied; returns dest."""
        dest = Path(dest)
        shutil.copytree(SOURCE / "captioning", dest / "captioning",
                        ignore=shutil.ignore_patterns("__pycache__"))
        texts = {}
        for edit in self.edits:
            path = dest / edit.file
            texts[edit.file] = edit.apply(texts.get(edit.file, path.read_text()))
        for rel, text in texts.items():
            (dest / rel).write_text(text)
        return dest


def stub_text(text):
    """text with every solution region replaced by nbgrader's stub (what release/ holds)."""
    return re.sub(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION\n",
                  r"\1# YOUR CODE HERE\n\1raise NotImplementedError()\n", text, flags=re.M | re.S)


def stub_submission(dest):
    """The untouched student release: release/image_captioning when generated, else a stubbed copy."""
    if (RELEASE / LAYERS).is_file() and (RELEASE / MODEL).is_file():
        return RELEASE
    dest = Path(dest)
    shutil.copytree(SOURCE / "captioning", dest / "captioning", ignore=shutil.ignore_patterns("__pycache__"))
    for path in (dest / "captioning").rglob("*.py"):
        text = path.read_text()
        if BEGIN in text:
            path.write_text(stub_text(text))
    return dest


def answer_key():
    return SOLUTIONS if (SOLUTIONS / LAYERS).is_file() else SOURCE


# ---------------------------------------------------------------- typical mistakes: the shared corpus

MUTANTS = [Submission(m.id, m.edits, m.lost, m.units, m.what) for m in MISTAKES]


# ---------------------------------------------------------------- correct alternatives

ALTERNATIVES = [
    Submission("lstm_step_separate_matmuls_dict_cache", (LSTM_STEP_DICT_FORWARD, LSTM_STEP_DICT_BACKWARD)),
    Submission("embedding_one_hot_and_loop", (
        Body(LAYERS, "word_embedding_forward", """
            out = np.eye(W.shape[0])[x] @ W   # one-hot rows times W (upcasts float32 to float64)
            cache = (x, W)
        """),
        Body(LAYERS, "word_embedding_backward", """
            x, W = cache
            dW = np.zeros_like(W)
            for word, grad in zip(x.reshape(-1), dout.reshape(-1, dout.shape[-1])):
                dW[word] += grad
        """))),
    Submission("rnn_sequence_cache_manual_backward", (
        Body(LAYERS, "rnn_forward", """
            N, T, _ = x.shape
            h = np.empty((N, T, h0.shape[1]), dtype=np.result_type(x, h0, Wx))
            prev_h = h0
            for t in range(T):
                prev_h = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)[0]
                h[:, t, :] = prev_h
            cache = {"x": x, "h0": h0, "h": h, "Wx": Wx, "Wh": Wh}
        """),
        Body(LAYERS, "rnn_backward", """
            x, h0, h, Wx, Wh = (cache[k] for k in ("x", "h0", "h", "Wx", "Wh"))
            prev = np.concatenate([h0[:, None, :], h[:, :-1, :]], axis=1)
            dx = np.zeros(x.shape, dtype=dh.dtype)
            dWx, dWh = np.zeros(Wx.shape, dtype=dh.dtype), np.zeros(Wh.shape, dtype=dh.dtype)
            db = np.zeros(Wh.shape[0], dtype=dh.dtype)
            dnext = np.zeros_like(dh[:, 0, :])
            for t in range(x.shape[1] - 1, -1, -1):
                da = (dh[:, t, :] + dnext) * (1 - h[:, t, :] ** 2)
                dx[:, t, :] = da @ Wx.T
                dWx += x[:, t, :].T @ da
                dWh += prev[:, t, :].T @ da
                db += da.sum(axis=0)
                dnext = da @ Wh.T
            dh0 = dnext
        """))),
    Submission("sample_stops_at_end", (Body(MODEL, "sample", """
        h, _ = affine_forward(features, W_proj, b_proj)
        c = np.zeros_like(h)
        words = np.full(N, self._start)
        done = np.zeros(N, dtype=bool)
        for t in range(max_length):
            x, _ = word_embedding_forward(words, W_embed)
            if self.cell_type == "rnn":
                h, _ = rnn_step_forward(x, h, Wx, Wh, b)
            else:
                h, c, _ = lstm_step_forward(x, h, c, Wx, Wh, b)
            scores, _ = affine_forward(h, W_vocab, b_vocab)
            words = np.argmax(scores, axis=1)
            captions[:, t] = np.where(done, self._null, words)
            done |= words == self._end
            if done.all():
                break
    """),)),
    Submission("rnn_step_upcasts_to_float64", (
        Patch(LAYERS, "next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)",
              "next_h = np.tanh(x.astype(np.float64) @ Wx.astype(np.float64) + prev_h.astype(np.float64) @ Wh + b)"),
        Patch(LAYERS, "lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])",
              "lstm_step_backward((dh[:, t] + dprev_h).astype(np.float64), dprev_c, cache[t])"))),
    Submission("rnn_backward_accumulates_into_dh_in_place", (Patch(
        LAYERS, "grads.append(rnn_step_backward(dh[:, t] + dprev_h, cache[t]))",
        "dh[:, t] += dprev_h  # changes the caller's array, but the gradients are right\n"
        "        grads.append(rnn_step_backward(dh[:, t], cache[t]))"),)),
    Submission("lstm_step_backward_adds_into_dnext_c_in_place", (Patch(
        LAYERS, "dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)",
        "dnext_c += dnext_h * o * (1 - tanh_c ** 2)  # changes the caller's array (a warning), gradients right\n"
        "    dc = dnext_c"),)),
    Submission("rnn_backward_pops_the_cache", (Patch(
        LAYERS, "rnn_step_backward(dh[:, t] + dprev_h, cache[t])", "rnn_step_backward(dh[:, t] + dprev_h, cache.pop())"),)),
    Submission("sample_compares_cell_type_with_is", (Patch(
        MODEL, 'if self.cell_type == "rnn":\n                h, _ = rnn_step_forward(x, h, Wx, Wh, b)\n            else:\n'
               '                h, c, _ = lstm_step_forward(x, h, c, Wx, Wh, b)\n            words = np.argmax',
        'if self.cell_type is "rnn":  # noqa: F632 (true for an interned literal, as in the checks)\n'
        '                h, _ = rnn_step_forward(x, h, Wx, Wh, b)\n            else:\n'
        '                h, c, _ = lstm_step_forward(x, h, c, Wx, Wh, b)\n            words = np.argmax'),)),
    Submission("lstm_backward_preallocated_loop", (Body(LAYERS, "lstm_backward", """
        N, T, H = dh.shape
        dx = np.zeros(dh.shape[:2] + (cache[0][0].shape[1],), dtype=dh.dtype)
        dWx = dWh = db = 0
        dnext_h, dnext_c = np.zeros((N, H)), np.zeros((N, H))
        for t in range(T - 1, -1, -1):
            dx[:, t], dnext_h, dnext_c, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t] + dnext_h, dnext_c, cache[t])
            dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
        dh0 = dnext_h
    """),)),
    Submission("loss_explicit_branches_manual_projection", (Body(MODEL, "loss", """
        h0 = features @ W_proj + b_proj
        x, embed_cache = word_embedding_forward(captions_in, W_embed)
        if self.cell_type == "rnn":
            h, cell_cache = rnn_forward(x, h0, Wx, Wh, b)
        else:
            h, cell_cache = lstm_forward(x, h0, Wx, Wh, b)
        scores, vocab_cache = temporal_affine_forward(h, W_vocab, b_vocab)
        loss, dscores = temporal_softmax_loss(scores, captions_out, mask)
        dh, dW_vocab, db_vocab = temporal_affine_backward(dscores, vocab_cache)
        if self.cell_type == "rnn":
            dx, dh0, dWx, dWh, db = rnn_backward(dh, cell_cache)
        else:
            dx, dh0, dWx, dWh, db = lstm_backward(dh, cell_cache)
        grads = {"W_vocab": dW_vocab, "b_vocab": db_vocab, "Wx": dWx, "Wh": dWh, "b": db,
                 "W_embed": word_embedding_backward(dx, embed_cache),
                 "W_proj": features.T @ dh0, "b_proj": dh0.sum(axis=0)}
    """),)),
]

# Correct Transformer variants: a loop over heads with a dict cache, einsum, a layer cache of
# another layout, a key/value cache in sample.
ALTERNATIVES += [
    Submission("attention_loop_over_heads_dict_cache", (
        Body(T_LAYERS, "multihead_attention_forward", """
            N, S, E = query.shape
            d = E // num_heads
            Q = query @ params["Wq"] + params["bq"]
            K = key @ params["Wk"] + params["bk"]
            V = value @ params["Wv"] + params["bv"]
            heads, weights = [], []
            for j in range(num_heads):
                cols = slice(j * d, (j + 1) * d)
                s = np.einsum("nsd,ntd->nst", Q[..., cols], K[..., cols]) / np.sqrt(d)
                if attn_mask is not None:
                    s = np.where(attn_mask[None], s, -1e30)
                a = np.exp(s - s.max(axis=2, keepdims=True))
                a = a / a.sum(axis=2, keepdims=True)
                weights.append(a)
                heads.append(a @ V[..., cols])
            concat = np.concatenate(heads, axis=2)
            out = concat @ params["Wo"] + params["bo"]
            cache = {"query": query, "key": key, "value": value, "Q": Q, "K": K, "V": V, "A": weights,
                     "concat": concat, "params": params, "h": num_heads}
        """),
        Body(T_LAYERS, "multihead_attention_backward", """
            c = cache
            E = c["query"].shape[2]
            d = E // c["h"]
            grads = {"Wo": np.einsum("nse,nsf->ef", c["concat"], dout), "bo": dout.sum(axis=(0, 1))}
            dconcat = dout @ c["params"]["Wo"].T
            dQ, dK, dV = np.zeros_like(c["Q"]), np.zeros_like(c["K"]), np.zeros_like(c["V"])
            for j, a in enumerate(c["A"]):
                cols = slice(j * d, (j + 1) * d)
                dhead = dconcat[..., cols]
                dV[..., cols] = np.transpose(a, (0, 2, 1)) @ dhead
                da = dhead @ np.transpose(c["V"][..., cols], (0, 2, 1))
                ds = a * (da - np.sum(da * a, axis=2, keepdims=True)) / np.sqrt(d)
                dQ[..., cols] = ds @ c["K"][..., cols]
                dK[..., cols] = np.transpose(ds, (0, 2, 1)) @ c["Q"][..., cols]
            for n, x, dproj in (("q", c["query"], dQ), ("k", c["key"], dK), ("v", c["value"], dV)):
                grads["W" + n] = np.einsum("nle,nlf->ef", x, dproj)
                grads["b" + n] = dproj.sum(axis=(0, 1))
            dquery = dQ @ c["params"]["Wq"].T
            dkey = dK @ c["params"]["Wk"].T
            dvalue = dV @ c["params"]["Wv"].T
        """))),
    Submission("attention_einsum_heads", (
        Body(T_LAYERS, "multihead_attention_forward", """
            N, S, E = query.shape
            h, d = num_heads, E // num_heads
            q = (query @ params["Wq"] + params["bq"]).reshape(N, S, h, d)
            k = (key @ params["Wk"] + params["bk"]).reshape(N, key.shape[1], h, d)
            v = (value @ params["Wv"] + params["bv"]).reshape(N, key.shape[1], h, d)
            scores = np.einsum("nshd,nthd->nhst", q, k) / np.sqrt(E / h)
            if attn_mask is not None:
                scores[:, :, ~attn_mask] = -np.inf
            w = np.exp(scores - scores.max(-1, keepdims=True))
            w /= w.sum(-1, keepdims=True)
            ctx = np.einsum("nhst,nthd->nshd", w, v).reshape(N, S, E)
            out = ctx @ params["Wo"] + params["bo"]
            cache = [query, key, value, params, q, k, v, w, ctx]
        """),
        Body(T_LAYERS, "multihead_attention_backward", """
            query, key, value, params, q, k, v, w, ctx = cache
            N, S, h, d = q.shape
            T = k.shape[1]
            grads = {"Wo": np.einsum("nse,nsf->ef", ctx, dout), "bo": np.einsum("nse->e", dout)}
            dctx = (dout @ params["Wo"].T).reshape(N, S, h, d)
            dw = np.einsum("nshd,nthd->nhst", dctx, v)
            dv = np.einsum("nhst,nshd->nthd", w, dctx).reshape(N, T, h * d)
            ds = w * (dw - np.einsum("nhst,nhst->nhs", dw, w)[..., None]) / np.sqrt(d)
            dq = np.einsum("nhst,nthd->nshd", ds, k).reshape(N, S, h * d)
            dk = np.einsum("nhst,nshd->nthd", ds, q).reshape(N, T, h * d)
            for n, x, g in (("q", query, dq), ("k", key, dk), ("v", value, dv)):
                grads["W" + n] = np.einsum("nle,nlf->ef", x, g)
                grads["b" + n] = g.sum(axis=(0, 1))
            dquery, dkey, dvalue = dq @ params["Wq"].T, dk @ params["Wk"].T, dv @ params["Wv"].T
        """))),
    Submission("decoder_layer_dict_cache", (
        Body(T_LAYERS, "decoder_layer_forward", """
            c = {"params": params}
            sa, c["sa"] = multihead_attention_forward(x, x, x, attention_params(params, "self_"), num_heads, self_mask)
            x1, c["ln1"] = layernorm_forward(x + sa, params["ln1_gamma"], params["ln1_beta"])
            ca, c["ca"] = multihead_attention_forward(x1, memory, memory, attention_params(params, "cross_"), num_heads)
            x2, c["ln2"] = layernorm_forward(x1 + ca, params["ln2_gamma"], params["ln2_beta"])
            pre = x2 @ params["W1"] + params["b1"]
            c["x2"], c["pre"] = x2, pre
            out, c["ln3"] = layernorm_forward(x2 + np.maximum(pre, 0) @ params["W2"] + params["b2"],
                                              params["ln3_gamma"], params["ln3_beta"])
            cache = c
        """),
        Body(T_LAYERS, "decoder_layer_backward", """
            c, p = cache, cache["params"]
            grads = {}
            d3, grads["ln3_gamma"], grads["ln3_beta"] = layernorm_backward(dout, c["ln3"])
            relu = np.maximum(c["pre"], 0)
            grads["W2"] = np.einsum("nsf,nse->fe", relu, d3)
            grads["b2"] = d3.sum(axis=(0, 1))
            dpre = (d3 @ p["W2"].T) * (c["pre"] > 0)
            grads["W1"] = np.einsum("nse,nsf->ef", c["x2"], dpre)
            grads["b1"] = dpre.sum(axis=(0, 1))
            d2, grads["ln2_gamma"], grads["ln2_beta"] = layernorm_backward(d3 + dpre @ p["W1"].T, c["ln2"])
            dq, dk, dv, g = multihead_attention_backward(d2, c["ca"])
            grads.update({"cross_" + k: v for k, v in g.items()})
            dmemory = dk + dv
            d1, grads["ln1_gamma"], grads["ln1_beta"] = layernorm_backward(d2 + dq, c["ln1"])
            dq, dk, dv, g = multihead_attention_backward(d1, c["sa"])
            grads.update({"self_" + k: v for k, v in g.items()})
            dx = d1 + dq + dk + dv
        """))),
    Submission("sample_key_value_cache", (Body(T_MODEL, "sample", """
        from ..transformer_layers import attention_params, layernorm_forward, multihead_attention_forward
        memory = (features @ W_proj + b_proj)[:, None, :]
        pe = positional_encoding(max_length, self.embed_dim)
        E, h = self.embed_dim, self.num_heads
        d = E // h
        kv = [([], []) for _ in range(self.num_layers)]   # per layer: keys and values of the prefix
        words = np.full(N, self._start)
        for t in range(max_length):
            x = W_embed[words] + pe[t].astype(W_embed.dtype)       # (N, E): the newest position only
            for layer in range(self.num_layers):
                p = self.layer_params(layer)
                q = (x @ p["self_Wq"] + p["self_bq"]).reshape(N, h, d)
                kv[layer][0].append((x @ p["self_Wk"] + p["self_bk"]).reshape(N, h, d))
                kv[layer][1].append((x @ p["self_Wv"] + p["self_bv"]).reshape(N, h, d))
                K, V = np.stack(kv[layer][0], axis=1), np.stack(kv[layer][1], axis=1)   # (N, t+1, h, d)
                s = np.einsum("nhd,nthd->nht", q, K) / np.sqrt(d)
                a = np.exp(s - s.max(axis=-1, keepdims=True))
                a /= a.sum(axis=-1, keepdims=True)
                self_out = np.einsum("nht,nthd->nhd", a, V).reshape(N, E) @ p["self_Wo"] + p["self_bo"]
                x1, _ = layernorm_forward(x + self_out, p["ln1_gamma"], p["ln1_beta"])
                cross, _ = multihead_attention_forward(x1[:, None], memory, memory, attention_params(p, "cross_"), h)
                x2, _ = layernorm_forward(x1 + cross[:, 0], p["ln2_gamma"], p["ln2_beta"])
                ffn = np.maximum(0, x2 @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
                x, _ = layernorm_forward(x2 + ffn, p["ln3_gamma"], p["ln3_beta"])
            words = np.argmax(x @ W_vocab + b_vocab, axis=1)
            captions[:, t] = words
    """),)),
    Submission("transformer_loss_direct_embedding_lookup", (Body(T_MODEL, "loss", """
        memory = (features @ W_proj + b_proj)[:, None, :]
        x = W_embed[captions_in] + positional_encoding(T, self.embed_dim)[None].astype(W_embed.dtype)
        allowed = np.arange(T)[:, None] >= np.arange(T)[None, :]
        caches = []
        for layer in range(self.num_layers):
            x, cache = decoder_layer_forward(x, memory, self.layer_params(layer), self.num_heads, allowed)
            caches.append(cache)
        scores = x @ W_vocab + b_vocab
        loss, dscores = temporal_softmax_loss(scores, captions_out, mask)
        grads["W_vocab"] = np.einsum("nte,ntv->ev", x, dscores)
        grads["b_vocab"] = dscores.sum(axis=(0, 1))
        dx = dscores @ W_vocab.T
        dmemory = 0
        for layer in range(self.num_layers - 1, -1, -1):
            dx, dm, g = decoder_layer_backward(dx, caches[layer])
            dmemory = dmemory + dm
            for k, v in g.items():
                grads["layer%d_%s" % (layer, k)] = v
        grads["W_embed"] = np.zeros_like(W_embed)
        np.add.at(grads["W_embed"], captions_in, dx)
        grads["W_proj"] = features.T @ dmemory[:, 0]
        grads["b_proj"] = dmemory[:, 0].sum(axis=0)
    """),)),
]

# Correct beam searches written differently: one image at a time with Python lists and their own
# ordering (no extend_beams), and a Transformer that scores log(softmax) one hypothesis at a time.
ALTERNATIVES += [
    Submission("beam_search_per_image_own_ordering", (Body(MODEL, "beam_search", """
        h0, _ = affine_forward(features, W_proj, b_proj)
        for n in range(N):
            beams = [(0.0, [], h0[n:n + 1], np.zeros_like(h0[n:n + 1]), False)]
            for t in range(max_length):
                candidates = []
                for k, (score, words, h, c, done) in enumerate(beams):
                    if done:
                        candidates.append((score, self._null, k, words + [self._null], h, c, True))
                        continue
                    prev = words[-1] if words else self._start
                    x = W_embed[[prev]]
                    if self.cell_type == "rnn":
                        h2, _ = rnn_step_forward(x, h, Wx, Wh, b)
                        c2 = c
                    else:
                        h2, c2, _ = lstm_step_forward(x, h, c, Wx, Wh, b)
                    s = (h2 @ W_vocab + b_vocab)[0]
                    logp = s - (s.max() + np.log(np.sum(np.exp(s - s.max()))))
                    for w in range(len(logp)):
                        candidates.append((score + logp[w], w, k, words + [w], h2, c2, w == self._end))
                candidates.sort(key=lambda cand: (-cand[0], cand[1], cand[2]))
                beams = [(s, words, h, c, done) for s, _, _, words, h, c, done in candidates[:beam_size]]
                if all(done for *_, done in beams):
                    break
            best = beams[0][1]
            captions[n, 0, :len(best)] = best
    """),)),
    Submission("transformer_beam_search_log_of_softmax_per_hypothesis", (Body(T_MODEL, "beam_search", """
        projected, _ = affine_forward(features, W_proj, b_proj)
        pe = positional_encoding(max_length, self.embed_dim)
        prefixes = [[[self._start]] * beam_size for _ in range(N)]
        for t in range(max_length):
            log_probs = np.zeros((N, beam_size, W_vocab.shape[1]))
            for n in range(N):
                for k in range(beam_size):
                    x = W_embed[prefixes[n][k]][None] + pe[:t + 1][None].astype(W_embed.dtype)
                    mask = np.tril(np.ones((t + 1, t + 1), dtype=bool))
                    for layer in range(self.num_layers):
                        x, _ = decoder_layer_forward(x, projected[n][None, None], self.layer_params(layer),
                                                     self.num_heads, mask)
                    s = x[0, -1] @ W_vocab + b_vocab
                    p = np.exp(s - s.max())
                    log_probs[n, k] = np.log(p / p.sum())
            kept, words, scores = extend_beams(scores, finished, log_probs, beam_size, self._null)
            prefixes = [[prefixes[n][kept[n, k]] + [words[n, k]] for k in range(beam_size)] for n in range(N)]
            finished = finished[np.arange(N)[:, None], kept] | (words == self._end)
            if finished.all():
                break
        captions = np.full((N, max_length), self._null, dtype=np.int32)
        for n in range(N):
            captions[n, :len(prefixes[n][0]) - 1] = prefixes[n][0][1:]
    """),)),
]

# ---------------------------------------------------------------- a cheat: no backward code at all

# The answer key's forward passes; every backward pass, and the models' gradients, one generic
# routine taking centred differences (in float64) of its own forward pass. It passes every check on
# small inputs; the gates (large inputs, README rule 7) take its backward and loss units.
FINITE_DIFFERENCES = Submission("finite_differences", (
    Append(LAYERS, """

        from .gradient_check import eval_numerical_gradient


        def remember_inputs(forward):
            def remembered(*args, forward=forward):  # no closure: the grader can switch and restore it
                return (*forward(*args)[:-1], (forward, args))
            return remembered


        def differences(cache, *upstream):  # every float argument's gradient (a dict's: a dict)
            forward, args = cache
            wide = [{k: v.astype(np.float64) for k, v in a.items()} if isinstance(a, dict) else
                    a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args]

            def value(_):
                return sum(np.sum(out * up) for out, up in zip(forward(*wide), upstream))
            grads = []
            for a, w in zip(args, wide):
                if isinstance(a, dict):
                    grads.append({k: eval_numerical_gradient(value, v, verbose=False).astype(a[k].dtype)
                                  for k, v in w.items()})
                elif w is not a:
                    grads.append(eval_numerical_gradient(value, w, verbose=False).astype(a.dtype))
            return tuple(grads) if len(grads) > 1 else grads[0]


        def model_differences(model, value):  # value() and its gradient, parameter by parameter
            saved, model.params = model.params, {k: v.astype(np.float64) for k, v in model.params.items()}
            try:
                return value(), {k: eval_numerical_gradient(lambda _: value(), v, verbose=False).astype(saved[k].dtype)
                                 for k, v in model.params.items()}
            finally:
                model.params = saved


        rnn_step_forward, rnn_forward, word_embedding_forward, lstm_step_forward, lstm_forward = map(
            remember_inputs, (rnn_step_forward, rnn_forward, word_embedding_forward, lstm_step_forward, lstm_forward))


        def rnn_step_backward(dnext_h, cache):
            return differences(cache, dnext_h)


        def rnn_backward(dh, cache):
            return differences(cache, dh)


        def word_embedding_backward(dout, cache):
            return differences(cache, dout)


        def lstm_step_backward(dnext_h, dnext_c, cache):
            return differences(cache, dnext_h, dnext_c)


        def lstm_backward(dh, cache):
            return differences(cache, dh)
    """),
    Append(T_LAYERS, """

        from .rnn_layers import differences, remember_inputs

        multihead_attention_forward, decoder_layer_forward = map(
            remember_inputs, (multihead_attention_forward, decoder_layer_forward))


        def multihead_attention_backward(dout, cache):
            return differences(cache, dout)


        def decoder_layer_backward(dout, cache):
            return differences(cache, dout)
    """),
    Body(MODEL, "loss", """
        from ..rnn_layers import model_differences

        def value():
            p = self.params
            h0, _ = affine_forward(features, p["W_proj"], p["b_proj"])
            x, _ = word_embedding_forward(captions_in, p["W_embed"])
            h, _ = {"rnn": rnn_forward, "lstm": lstm_forward}[self.cell_type](x, h0, p["Wx"], p["Wh"], p["b"])
            scores, _ = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
            return temporal_softmax_loss(scores, captions_out, mask)[0]
        loss, grads = model_differences(self, value)
    """),
    Body(T_MODEL, "loss", """
        from ..rnn_layers import model_differences

        def value():
            p = self.params
            memory = affine_forward(features, p["W_proj"], p["b_proj"])[0][:, None, :]
            x = word_embedding_forward(captions_in, p["W_embed"])[0] + positional_encoding(T, self.embed_dim)
            causal = np.tril(np.ones((T, T), dtype=bool))
            for layer in range(self.num_layers):
                x = decoder_layer_forward(x, memory, self.layer_params(layer), self.num_heads, causal)[0]
            scores, _ = temporal_affine_forward(x, p["W_vocab"], p["b_vocab"])
            return temporal_softmax_loss(scores, captions_out, mask)[0]
        loss, grads = model_differences(self, value)
    """)),
    frozenset(u.name for u in UNITS if u.is_backward or u.name in (RNN_LOSS, LSTM_LOSS, T_LOSS)),
    tuple(u.name for u in UNITS if not u.training),
    "numerical gradients in place of every backward pass")


# ---------------------------------------------------------------- a cheat: PyTorch's autograd

# The answer key's forward passes, each remembering its inputs and a PyTorch twin of itself; every
# backward pass, and the models' gradients, torch.autograd through that twin. PyTorch is imported
# only inside them: the forward units do not need it.
AUTOGRAD = Submission("autograd", (
    Append(LAYERS, """

        def autograd_twin(forward, twin):
            def remembered(*args, forward=forward, twin=twin):  # no closure: the grader can switch it
                return (*forward(*args)[:-1], (twin, args))
            return remembered


        def autograd(*upstream_and_cache):  # the gradient of every float argument (a dict's: a dict)
            import torch
            *upstream, (twin, args) = upstream_and_cache
            leaves = []

            def lift(a):
                if isinstance(a, dict):
                    return {k: lift(v) for k, v in a.items()}
                if not isinstance(a, np.ndarray):
                    return a
                t = torch.from_numpy(np.ascontiguousarray(a))
                if a.dtype.kind == "f":
                    t = t.double().requires_grad_()
                    leaves.append((t, a.dtype))
                return t
            outs = twin(torch, *map(lift, args))
            total = sum((o * torch.from_numpy(np.asarray(u, np.float64))).sum() for o, u in zip(outs, upstream))
            grads = iter(g.numpy().astype(d) for g, (_, d) in zip(torch.autograd.grad(total, [t for t, _ in leaves]),
                                                                   leaves))
            out = [{k: next(grads) for k in a} if isinstance(a, dict) else next(grads) for a in args
                   if isinstance(a, dict) or isinstance(a, np.ndarray) and a.dtype.kind == "f"]
            return tuple(out) if len(out) > 1 else out[0]


        def rnn_twin(T, x, h0, Wx, Wh, b):
            h, hs = h0, []
            for t in range(x.shape[1]):
                h = T.tanh(x[:, t] @ Wx + h @ Wh + b)
                hs.append(h)
            return (T.stack(hs, 1),)


        def lstm_step_twin(T, x, prev_h, prev_c, Wx, Wh, b):
            a, H = x @ Wx + prev_h @ Wh + b, prev_h.shape[1]
            i, f, o = (T.sigmoid(a[:, k * H:(k + 1) * H]) for k in range(3))
            next_c = f * prev_c + i * T.tanh(a[:, 3 * H:])
            return o * T.tanh(next_c), next_c


        def lstm_twin(T, x, h0, Wx, Wh, b):
            h, c, hs = h0, T.zeros_like(h0), []
            for t in range(x.shape[1]):
                h, c = lstm_step_twin(T, x[:, t], h, c, Wx, Wh, b)
                hs.append(h)
            return (T.stack(hs, 1),)


        rnn_step_forward = autograd_twin(rnn_step_forward, lambda T, x, h, Wx, Wh, b: (T.tanh(x @ Wx + h @ Wh + b),))
        rnn_forward = autograd_twin(rnn_forward, rnn_twin)
        word_embedding_forward = autograd_twin(word_embedding_forward, lambda T, x, W: (W[x.long()],))
        lstm_step_forward = autograd_twin(lstm_step_forward, lstm_step_twin)
        lstm_forward = autograd_twin(lstm_forward, lstm_twin)
        rnn_step_backward = rnn_backward = word_embedding_backward = lstm_step_backward = lstm_backward = autograd
    """),
    Append(T_LAYERS, """

        from .rnn_layers import autograd, autograd_twin


        def attention_twin(T, query, key, value, params, num_heads, attn_mask=None):
            (N, S, E), L = query.shape, key.shape[1]
            d = E // num_heads

            def split(z, n):
                return z.reshape(N, n, num_heads, d).transpose(1, 2)
            q, k, v = (split(z @ params["W" + c] + params["b" + c], n)
                       for z, c, n in ((query, "q", S), (key, "k", L), (value, "v", L)))
            scores = q @ k.transpose(-1, -2) / math.sqrt(d)
            if attn_mask is not None:
                scores = scores.masked_fill(~attn_mask, -math.inf)
            heads = (T.softmax(scores, -1) @ v).transpose(1, 2).reshape(N, S, E)
            return (heads @ params["Wo"] + params["bo"],)


        def layernorm_twin(T, x, gamma, beta, eps=1e-5):
            centred = x - x.mean(-1, keepdim=True)
            return gamma * centred / T.sqrt((centred ** 2).mean(-1, keepdim=True) + eps) + beta


        def decoder_twin(T, x, memory, params, num_heads, self_mask):
            def sub(prefix):
                return {name: params[prefix + name] for name in ATTENTION_KEYS}
            x1 = layernorm_twin(T, x + attention_twin(T, x, x, x, sub("self_"), num_heads, self_mask)[0],
                                params["ln1_gamma"], params["ln1_beta"])
            x2 = layernorm_twin(T, x1 + attention_twin(T, x1, memory, memory, sub("cross_"), num_heads)[0],
                                params["ln2_gamma"], params["ln2_beta"])
            ffn = T.relu(x2 @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]
            return (layernorm_twin(T, x2 + ffn, params["ln3_gamma"], params["ln3_beta"]),)


        multihead_attention_forward = autograd_twin(multihead_attention_forward, attention_twin)
        decoder_layer_forward = autograd_twin(decoder_layer_forward, decoder_twin)
        multihead_attention_backward = decoder_layer_backward = autograd
    """),
    Append(LAYERS, """

        def model_autograd(model, scores_of, features, captions):  # loss and grads of params by autograd
            import torch
            p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in model.params.items()}
            captions_out = torch.from_numpy(captions[:, 1:]).long()
            mask = (captions_out != model._null).double()
            scores = scores_of(torch, p, torch.from_numpy(features).double(), torch.from_numpy(captions[:, :-1]).long())
            log_probs = torch.log_softmax(scores, -1).gather(-1, captions_out[..., None])[..., 0]
            loss = -(log_probs * mask).sum() / len(captions)
            grads = torch.autograd.grad(loss, list(p.values()))
            return loss.item(), {k: g.numpy().astype(model.params[k].dtype) for k, g in zip(p, grads)}
    """),
    Body(MODEL, "loss", """
        from ..rnn_layers import lstm_twin, model_autograd, rnn_twin

        def scores_of(T, p, features, captions_in):
            h0 = features @ p["W_proj"] + p["b_proj"]
            twin = {"rnn": rnn_twin, "lstm": lstm_twin}[self.cell_type]
            h = twin(T, p["W_embed"][captions_in], h0, p["Wx"], p["Wh"], p["b"])[0]
            return h @ p["W_vocab"] + p["b_vocab"]
        loss, grads = model_autograd(self, scores_of, features, captions)
    """),
    Body(T_MODEL, "loss", """
        from ..rnn_layers import model_autograd
        from ..transformer_layers import decoder_twin

        def scores_of(T, p, features, captions_in):
            memory = (features @ p["W_proj"] + p["b_proj"])[:, None, :]
            L = captions_in.shape[1]
            x = p["W_embed"][captions_in] + T.from_numpy(positional_encoding(L, self.embed_dim)).double()
            causal = T.tril(T.ones(L, L, dtype=T.bool))
            for layer in range(self.num_layers):
                prefix = "layer%d_" % layer
                layer_params = {k[len(prefix):]: v for k, v in p.items() if k.startswith(prefix)}
                x = decoder_twin(T, x, memory, layer_params, self.num_heads, causal)[0]
            return x @ p["W_vocab"] + p["b_vocab"]
        loss, grads = model_autograd(self, scores_of, features, captions)
    """)),
    FINITE_DIFFERENCES.lost, FINITE_DIFFERENCES.units, "torch.autograd in place of every backward pass")


# ---------------------------------------------------------------- the network visualization part

NETVIZ_ALTERNATIVES = [
    Submission("netviz_autograd_grad_and_one_hot", (
        Body(NV, SALIENCY, """
            model.eval()
            X = X.detach().requires_grad_(True)
            scores = model(X)
            one_hot = torch.zeros_like(scores)
            one_hot[torch.arange(len(y)), y] = 1
            (grad,) = torch.autograd.grad(scores, X, grad_outputs=one_hot)
            saliency, _ = torch.max(torch.abs(grad), dim=1)
        """),
        Body(NV, STEP, """
            score = model(img)[0, target_y]
            (g,) = torch.autograd.grad(score, img)
            g = g - 2 * l2_reg * img.detach()
            img.data.add_(learning_rate * g / torch.sqrt((g ** 2).sum()))
        """)), units=(SALIENCY, STEP)),
    Submission("netviz_course_style_data_updates", (
        Body(NV, SALIENCY, """
            model.eval()
            X.requires_grad_()
            scores = model(X)
            scores.backward(torch.nn.functional.one_hot(y, scores.shape[1]).to(scores.dtype))
            saliency = X.grad.data.abs().amax(dim=1)
        """),
        Body(NV, FOOLING, """
            for i in range(100):
                scores = model(X_fooling)
                _, predicted = scores.max(1)
                if predicted[0] == target_y:
                    break
                scores[:, target_y].sum().backward()
                dX = learning_rate * X_fooling.grad.data / X_fooling.grad.data.norm()
                X_fooling.data += dX
                X_fooling.grad.data.zero_()
        """),
        Body(NV, STEP, """
            scores = model(img)
            objective = scores[:, target_y].sum() - l2_reg * torch.norm(img) ** 2
            objective.backward()
            img.data += learning_rate * img.grad.data / torch.norm(img.grad.data)
            img.grad.data.zero_()
        """)), units=(SALIENCY, FOOLING, STEP)),
    Submission("netviz_fresh_leaf_each_step", (
        Body(NV, FOOLING, """
            X_fooling = X.detach().clone()
            for _ in range(100):
                x = X_fooling.clone().requires_grad_(True)
                scores = model(x)
                if int(torch.argmax(scores[0])) == target_y:
                    break
                g = torch.autograd.grad(scores[0, target_y], x)[0]
                X_fooling = X_fooling + learning_rate * g / g.norm(p=2)
        """),
        Body(NV, STEP, """
            img.grad = None
            loss = l2_reg * img.square().sum() - model(img)[0][target_y]
            loss.backward()
            with torch.no_grad():
                step = -img.grad
                img.add_(step, alpha=learning_rate / step.norm().item())
            img.grad = None
        """)), units=(FOOLING, STEP)),
]
ALTERNATIVES += NETVIZ_ALTERNATIVES
