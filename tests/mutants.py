"""Submissions for the autograder's own tests, built as patches of the answer key.

A submission is a copy of source/image_captioning/captioning with some edits applied:
- Patch(file, old, new): replace a snippet that must occur exactly once (so an edit of the
  source cannot silently turn a mutant into the answer key);
- Body(file, function, new): replace the whole solution region of one function or method;
- Append(file, code): add code at the end of a file.

MUTANTS are typical student mistakes with the units they must lose points on; ALTERNATIVES are
correct implementations written differently, which must get full marks.
"""
import re
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

from autograder.course import RELEASE_DIR, SOLUTIONS_DIR, SOURCE_DIR
from autograder.units import UNITS

ROOT = Path(__file__).resolve().parents[1]
SOURCE = SOURCE_DIR
RELEASE = RELEASE_DIR
SOLUTIONS = SOLUTIONS_DIR
LAYERS, MODEL = "captioning/rnn_layers.py", "captioning/classifiers/rnn.py"
T_LAYERS, T_MODEL = "captioning/transformer_layers.py", "captioning/classifiers/transformer.py"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


@dataclass(frozen=True)
class Patch:
    file: str
    old: str
    new: str

    def apply(self, text):
        count = text.count(self.old)
        assert count == 1, "%s: snippet occurs %d times, expected once: %r" % (self.file, count, self.old)
        return text.replace(self.old, self.new)


@dataclass(frozen=True)
class Body:
    """The solution region of `def function(` (first region after it) replaced by `new`."""
    file: str
    function: str
    new: str

    def apply(self, text):
        starts = [m.start() for m in re.finditer(r"\bdef %s\(" % re.escape(self.function), text)]
        assert len(starts) == 1, "%s: %d definitions of %s" % (self.file, len(starts), self.function)
        begin = text.index(BEGIN, starts[0])
        nxt = re.search(r"\n\s*def \w+\(", text[starts[0] + 4:])
        assert nxt is None or begin < starts[0] + 4 + nxt.start(), "%s has no solution region" % self.function
        line_start = text.rindex("\n", 0, begin) + 1
        indent = text[line_start:begin]
        end = text.index("\n", text.index(END, begin)) + 1
        body = textwrap.indent(textwrap.dedent(self.new).strip("\n") + "\n", indent)
        return text[:line_start] + body + text[end:]


@dataclass(frozen=True)
class Append:
    """Code added at the end of a file."""
    file: str
    code: str

    def apply(self, text):
        return text + textwrap.dedent(self.code)


@dataclass(frozen=True)
class Submission:
    name: str
    edits: tuple
    lost: frozenset = frozenset()   # units that must lose points (empty: full marks)
    units: tuple = None             # units to grade (None: every unit but the overfit ones)
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


RNN_LOSS, LSTM_LOSS = "CaptioningRNN.loss (rnn)", "CaptioningRNN.loss (lstm)"
RNN_SAMPLE, LSTM_SAMPLE = "CaptioningRNN.sample (rnn)", "CaptioningRNN.sample (lstm)"
MHA, MHA_B = "multihead_attention_forward", "multihead_attention_backward"
DEC, DEC_B = "decoder_layer_forward", "decoder_layer_backward"
T_LOSS, T_SAMPLE, T_OVERFIT = "CaptioningTransformer.loss", "CaptioningTransformer.sample", "overfit (transformer)"
BEAM, T_BEAM = "CaptioningRNN.beam_search", "CaptioningTransformer.beam_search"


def mutant(name, edits, lost, what, units=None):
    return Submission(name, tuple(edits), frozenset(lost), units, what)


# ---------------------------------------------------------------- typical mistakes

MUTANTS = [
    mutant("relu_instead_of_tanh", [Patch(LAYERS, "next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)",
                                          "next_h = np.maximum(0, x.dot(Wx) + prev_h.dot(Wh) + b)")],
           {"rnn_step_forward"}, "ReLU instead of tanh in the RNN step"),
    mutant("no_tanh_derivative", [Patch(LAYERS, "da = dnext_h * (1 - next_h ** 2)", "da = dnext_h")],
           {"rnn_step_backward"}, "forgets the 1 - tanh^2 factor"),
    mutant("db_wrong_axis", [Patch(LAYERS, "db = da.sum(axis=0)\n    ### END SOLUTION\n    return dx, dprev_h, dWx, dWh, db",
                                   "db = da.sum(axis=1)\n    ### END SOLUTION\n    return dx, dprev_h, dWx, dWh, db")],
           {"rnn_step_backward"}, "db summed over the hidden axis: shape (N,) instead of (H,)"),
    mutant("rnn_forward_off_by_one", [Patch(LAYERS, "    for t in range(T):\n        prev_h, step_cache = rnn_step_forward",
                                            "    for t in range(T - 1):\n        prev_h, step_cache = rnn_step_forward")],
           {"rnn_forward"}, "time loop stops one step early"),
    mutant("rnn_backward_no_carry", [Patch(LAYERS, "rnn_step_backward(dh[:, t] + dprev_h, cache[t])",
                                           "rnn_step_backward(dh[:, t], cache[t])")],
           {"rnn_backward"}, "does not carry dprev_h from one step to the previous one"),
    mutant("rnn_backward_overwrites_dW", [Patch(LAYERS, "dWx, dWh, db = (sum(g[i] for g in grads) for i in (2, 3, 4))",
                                                "dWx, dWh, db = (grads[-1][i] for i in (2, 3, 4))")],
           {"rnn_backward"}, "keeps the weight gradients of one step instead of summing over time"),
    mutant("embedding_flattened", [Patch(LAYERS, "out = W[x]", "out = W[x.reshape(-1)]")],
           {"word_embedding_forward"}, "returns (N*T, D) instead of (N, T, D)"),
    mutant("embedding_fancy_index_add", [Patch(LAYERS, "np.add.at(dW, x, dout)", "dW[x] += dout")],
           {"word_embedding_backward"}, "dW[x] += dout loses repeated words"),
    mutant("embedding_returns_none", [Patch(LAYERS, "np.add.at(dW, x, dout)", "dW = np.add.at(dW, x, dout)")],
           {"word_embedding_backward"}, "dW = np.add.at(...) makes dW None"),
    mutant("lstm_gate_order_ifgo", [Patch(LAYERS, "i, f, o = (sigmoid(a[:, k * H:(k + 1) * H]) for k in range(3))\n    g = np.tanh(a[:, 3 * H:])",
                                          "i, f, g, o = np.split(a, 4, axis=1)\n    i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)")],
           {"lstm_step_forward"}, "gates split as i, f, g, o"),
    mutant("lstm_tanh_prev_c", [Patch(LAYERS, "tanh_c = np.tanh(next_c)", "tanh_c = np.tanh(prev_c)")],
           {"lstm_step_forward"}, "next_h = o * tanh(prev_c)"),
    mutant("lstm_swapped_weights", [Patch(LAYERS, "a = x.dot(Wx) + prev_h.dot(Wh) + b\n    i, f, o",
                                          "a = x.dot(Wh) + prev_h.dot(Wx) + b\n    i, f, o")],
           {"lstm_step_forward"}, "multiplies x by Wh and prev_h by Wx (raises)"),
    mutant("lstm_dprev_c_without_dh", [Patch(LAYERS, "dprev_c = dc * f", "dprev_c = dnext_c * f")],
           {"lstm_step_backward"}, "dprev_c ignores the path through next_h"),
    mutant("lstm_c0_is_h0", [Patch(LAYERS, "prev_h, prev_c, step_caches = h0, np.zeros_like(h0), []",
                                   "prev_h, prev_c, step_caches = h0, h0, []")],
           {"lstm_forward"}, "initial cell state h0 instead of zeros"),
    mutant("lstm_backward_no_dc_carry", [Patch(LAYERS, "lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])",
                                               "lstm_step_backward(dh[:, t] + dprev_h, np.zeros_like(dprev_c), cache[t])")],
           {"lstm_backward"}, "does not carry the cell-state gradient between steps"),
    mutant("lstm_backward_last_step_dW", [Patch(LAYERS, "dWx, dWh, db = (sum(g[i] for g in grads) for i in (3, 4, 5))",
                                                "dWx, dWh, db = (grads[0][i] for i in (3, 4, 5))")],
           {"lstm_backward"}, "weight gradients of the first step only"),
    mutant("loss_no_mask", [Patch(MODEL, "temporal_softmax_loss(scores, captions_out, mask)",
                                  "temporal_softmax_loss(scores, captions_out, np.ones_like(mask))")],
           {RNN_LOSS, LSTM_LOSS}, "does not mask <NULL> targets"),
    mutant("loss_no_shift", [Patch(MODEL, "word_embedding_forward(captions_in, W_embed)",
                                   "word_embedding_forward(captions_out, W_embed)")],
           {RNN_LOSS, LSTM_LOSS}, "feeds the targets as inputs (no shift)"),
    mutant("sample_no_feedback", [Patch(MODEL, "words = np.argmax(h.dot(W_vocab) + b_vocab, axis=1)\n            captions[:, t] = words",
                                        "captions[:, t] = np.argmax(h.dot(W_vocab) + b_vocab, axis=1)")],
           {RNN_SAMPLE, LSTM_SAMPLE}, "always feeds <START>"),
    mutant("sample_start_in_column_0", [Patch(MODEL, "words = np.full(N, self._start)\n        for t in range(max_length):",
                                              "words = np.full(N, self._start)\n        captions[:, 0] = self._start\n"
                                              "        for t in range(1, max_length):")],
           {RNN_SAMPLE, LSTM_SAMPLE}, "writes <START> in column 0"),
    mutant("sample_lstm_c0_from_features", [Patch(MODEL, "h, _ = affine_forward(features, W_proj, b_proj)\n        c = np.zeros_like(h)",
                                                  "h, _ = affine_forward(features, W_proj, b_proj)\n        c = h.copy()")],
           {LSTM_SAMPLE}, "LSTM sampling starts the cell state at the projected features"),
    mutant("zero_init", [Patch(MODEL, "self.params[k] = v.astype(self.dtype)",
                               "self.params[k] = np.zeros_like(v).astype(self.dtype)")],
           {"overfit (rnn)", "overfit (lstm)"}, "all parameters initialised to zero: nothing but b_vocab learns",
           units=(RNN_LOSS, RNN_SAMPLE, "overfit (rnn)", LSTM_LOSS, LSTM_SAMPLE, "overfit (lstm)")),
]

# ---------------------------------------------------------------- typical Transformer mistakes

MUTANTS += [
    mutant("pe_sin_cos_swapped", [Patch(T_LAYERS, "pe[:, 0::2] = np.sin(t * frequencies)\n    pe[:, 1::2] = np.cos(t * frequencies)",
                                        "pe[:, 0::2] = np.cos(t * frequencies)\n    pe[:, 1::2] = np.sin(t * frequencies)")],
           {"positional_encoding"}, "cosines in the even columns, sines in the odd ones"),
    mutant("pe_exponent_i_not_2i", [Patch(T_LAYERS, "10000.0 ** (-np.arange(0, embed_dim, 2) / embed_dim)",
                                          "10000.0 ** (-np.arange(embed_dim // 2) / embed_dim)")],
           {"positional_encoding"}, "frequency exponent i / D instead of 2i / D"),
    mutant("attention_scaled_by_sqrt_E", [Patch(T_LAYERS, "scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d)",
                                                "scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(E)")],
           {MHA}, "scores divided by sqrt(E) instead of sqrt(E / h)"),
    mutant("attention_mask_after_softmax", [Patch(T_LAYERS, """    if attn_mask is not None:
        scores = np.where(attn_mask, scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
""", """    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    if attn_mask is not None:
        weights = weights * attn_mask
""")], {MHA}, "masks the attention weights after the softmax (rows no longer sum to 1)"),
    mutant("attention_heads_split_wrong_axis", [Patch(T_LAYERS, "return x.reshape(N, L, num_heads, d).transpose(0, 2, 1, 3)   # (N, h, L, d)",
                                                      "return x.reshape(N, num_heads, L, d)")],
           {MHA}, "heads split by reshaping (N, L, E) straight to (N, h, L, d)"),
    mutant("attention_softmax_over_queries", [Patch(T_LAYERS, """    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
""", """    scores = scores - scores.max(axis=-2, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-2, keepdims=True)
""")], {MHA}, "softmax over the queries instead of the keys"),
    mutant("attention_backward_softmax_without_sum", [Patch(T_LAYERS, "dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True)) / math.sqrt(d)",
                                                            "dscores = weights * dweights / math.sqrt(d)")],
           {MHA_B}, "softmax backward as if it were elementwise"),
    mutant("attention_backward_forgets_scale", [Patch(T_LAYERS, "dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True)) / math.sqrt(d)",
                                                      "dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))")],
           {MHA_B}, "forgets the 1 / sqrt(d) of the scores in the backward pass"),
    mutant("decoder_missing_residual", [Patch(T_LAYERS, 'x1, ln1_cache = layernorm_forward(x + self_out, params["ln1_gamma"], params["ln1_beta"])',
                                              'x1, ln1_cache = layernorm_forward(self_out, params["ln1_gamma"], params["ln1_beta"])')],
           {DEC}, "no residual connection around the self-attention"),
    mutant("decoder_layer_norm_wrong_axis", [Patch(T_LAYERS, 'out, ln3_cache = layernorm_forward(x2 + ffn_out, params["ln3_gamma"], params["ln3_beta"])',
                                                   'out, ln3_cache = layernorm_forward((x2 + ffn_out).transpose(0, 2, 1), params["ln3_gamma"][:, None], '
                                                   'params["ln3_beta"][:, None])\n    out = out.transpose(0, 2, 1)')],
           {DEC}, "last layer norm over the positions instead of the features"),
    mutant("decoder_cross_attends_to_x", [Patch(T_LAYERS, "multihead_attention_forward(x1, memory, memory, attention_params(params, \"cross_\"),",
                                                "multihead_attention_forward(x1, x1, x1, attention_params(params, \"cross_\"),")],
           {DEC}, "the cross-attention attends to the caption instead of the image"),
    mutant("decoder_backward_x_only_as_query", [Patch(T_LAYERS, "dx = dres1 + dq + dk + dv", "dx = dres1 + dq")],
           {DEC_B}, "x feeds the self-attention's query, key and value: only the query's gradient is kept"),
    mutant("decoder_backward_no_relu_mask", [Patch(T_LAYERS, "dhidden = (dres3 @ W2.T) * (hidden > 0)", "dhidden = dres3 @ W2.T")],
           {DEC_B}, "forgets the ReLU's derivative"),
    mutant("loss_no_causal_mask", [Patch(T_MODEL, "x, cache = decoder_layer_forward(x, memory, self.layer_params(layer), self.num_heads, causal)",
                                         "x, cache = decoder_layer_forward(x, memory, self.layer_params(layer), self.num_heads, None)")],
           {T_LOSS}, "no causal mask at training time: every word sees the words it must predict"),
    mutant("loss_causal_mask_off_by_one", [Patch(T_MODEL, "        causal = np.tril(np.ones((T, T), dtype=bool))\n        layer_caches = []",
                                                 "        causal = np.tril(np.ones((T, T), dtype=bool), k=1)\n        layer_caches = []")],
           {T_LOSS}, "causal mask one step too wide: position t also sees t + 1"),
    mutant("loss_memory_gradient_of_last_layer_only", [Patch(T_MODEL, "dmemory = dmemory + dmemory_layer", "dmemory = dmemory_layer")],
           {T_LOSS}, "keeps the memory gradient of one layer instead of summing over the layers"),
    mutant("loss_no_positional_encoding", [Patch(T_MODEL, "x = x + positional_encoding(T, self.embed_dim).astype(x.dtype)", "pass")],
           {T_LOSS}, "forgets the positional encodings"),
    mutant("sample_last_word_only", [Body(T_MODEL, "sample", """
        projected, _ = affine_forward(features, W_proj, b_proj)
        memory = projected[:, None, :]
        pe = positional_encoding(max_length, self.embed_dim)
        words = np.full(N, self._start)
        for t in range(max_length):
            x, _ = word_embedding_forward(words[:, None], W_embed)
            x = x + pe[t:t + 1].astype(x.dtype)
            for layer in range(self.num_layers):
                x, _ = decoder_layer_forward(x, memory, self.layer_params(layer), self.num_heads, None)
            words = np.argmax(x[:, -1] @ W_vocab + b_vocab, axis=1)
            captions[:, t] = words
    """)], {T_SAMPLE}, "feeds only the last word back (an RNN habit), not the whole prefix"),
    mutant("sample_no_positional_encoding", [Patch(T_MODEL, "(prefix, W_embed)\n            x = x + pe[:t + 1].astype(x.dtype)",
                                                   "(prefix, W_embed)")],
           {T_SAMPLE}, "samples without positional encodings"),
    mutant("transformer_zero_init", [Patch(T_MODEL, "self.params[k] = v.astype(self.dtype)",
                                           "self.params[k] = np.zeros_like(v).astype(self.dtype)")],
           {T_OVERFIT}, "all Transformer parameters initialised to zero: it cannot learn",
           units=(T_LOSS, T_SAMPLE, T_OVERFIT)),
]

# A correct LSTM step written differently: separate matmuls per gate, a dict cache.
LSTM_STEP_DICT_FORWARD = Body(LAYERS, "lstm_step_forward", """
    H = prev_h.shape[1]
    gates = {}
    for k, name in enumerate("ifog"):
        cols = slice(k * H, (k + 1) * H)
        a_k = x @ Wx[:, cols] + prev_h @ Wh[:, cols] + b[cols]
        gates[name] = np.tanh(a_k) if name == "g" else sigmoid(a_k)
    next_c = gates["f"] * prev_c + gates["i"] * gates["g"]
    next_h = gates["o"] * np.tanh(next_c)
    cache = dict(gates, x=x, prev_h=prev_h, prev_c=prev_c, tanh_c=np.tanh(next_c), Wx=Wx, Wh=Wh)
""")
LSTM_STEP_DICT_BACKWARD = Body(LAYERS, "lstm_step_backward", """
    i, f, o, g, tanh_c = (cache[k] for k in ("i", "f", "o", "g", "tanh_c"))
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)
    di, df, do, dg = dc * g, dc * cache["prev_c"], dnext_h * tanh_c, dc * i
    da = np.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g * g)])
    dx = da @ cache["Wx"].T
    dprev_h = da @ cache["Wh"].T
    dprev_c = dc * f
    dWx = cache["x"].T @ da
    dWh = cache["prev_h"].T @ da
    db = np.sum(da, axis=0)
""")

MUTANTS.append(mutant(
    "dict_cache_lstm_tanh_prev_c",
    [LSTM_STEP_DICT_FORWARD, LSTM_STEP_DICT_BACKWARD,
     Patch(LAYERS, "tanh_c=np.tanh(next_c)", "tanh_c=np.tanh(prev_c)"),
     Patch(LAYERS, 'next_h = gates["o"] * np.tanh(next_c)', 'next_h = gates["o"] * np.tanh(prev_c)')],
    # The reference forward's cache does not fit this backward pass, and the backward pass is right
    # for the correct forward, not for its own buggy one (tanh(prev_c)): neither the retry nor the
    # check against numerical gradients of its own forward can credit it. (When the backward pass
    # matches its own forward, it is credited: tests/test_fair_grading.py.)
    {"lstm_step_forward", "lstm_step_backward"}, "own cache layout and a forward bug"))

# Beam search: the mistakes of the two model families.
MUTANTS += [
    mutant("beam_raw_scores", [Patch(MODEL, "log_probs = vocab_scores - np.log(np.exp(vocab_scores).sum(axis=1, keepdims=True))",
                                     "log_probs = vocab_scores")],
           {BEAM}, "ranks hypotheses by summed raw scores, not log-probabilities"),
    mutant("beam_probabilities", [Patch(MODEL, "log_probs = vocab_scores - np.log(np.exp(vocab_scores).sum(axis=1, keepdims=True))",
                                        "log_probs = np.exp(vocab_scores) / np.exp(vocab_scores).sum(axis=1, keepdims=True)")],
           {BEAM}, "adds probabilities instead of log-probabilities"),
    mutant("beam_states_not_reordered", [Patch(MODEL, "h, c, words = h[parents], c[parents], words.ravel()",
                                               "words = words.ravel()")],
           {BEAM}, "keeps each slot's state when the kept hypotheses come from other slots"),
    mutant("beam_cell_state_not_reordered", [Patch(MODEL, "h, c, words = h[parents], c[parents], words.ravel()",
                                                   "h, words = h[parents], words.ravel()")],
           {BEAM}, "LSTM: the hidden states follow their hypotheses, the cell states do not"),
    mutant("beam_never_finishes", [Patch(MODEL, "finished = finished[images, kept] | (words == self._end)",
                                         "finished = finished[images, kept]")],
           {BEAM}, "hypotheses go on after <END>"),
    mutant("beam_returns_last_slot", [Patch(MODEL, "        ### END SOLUTION\n        return captions[:, 0]",
                                            "        ### END SOLUTION\n        return captions[:, -1]")],
           {BEAM}, "returns the worst kept hypothesis, not the best"),
    mutant("beam_search_is_greedy", [Body(MODEL, "beam_search", "return self.sample(features, max_length)"),
                                     Body(T_MODEL, "beam_search", "return self.sample(features, max_length)")],
           {BEAM, T_BEAM}, "a trick: greedy captions passed off as beam search (right for beam_size=1 only)"),
    mutant("transformer_beam_prefixes_not_reordered", [
        Patch(T_MODEL, "prefixes = np.concatenate([prefixes[images, kept], words[:, :, None]], axis=2)",
              "prefixes = np.concatenate([prefixes, words[:, :, None]], axis=2)")],
           {T_BEAM}, "appends each kept word to the prefix in its slot, not to the one it extends"),
    mutant("transformer_beam_never_finishes", [
        Patch(T_MODEL, "finished = finished[images, kept] | (words == self._end)", "finished = finished[images, kept]")],
           {T_BEAM}, "hypotheses go on after <END>"),
    mutant("transformer_beam_raw_scores", [
        Patch(T_MODEL, "log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))", "pass")],
           {T_BEAM}, "ranks hypotheses by summed raw (shifted) scores, not log-probabilities"),
]

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


# ---------------------------------------------------------------- the network visualization part

from tests.netviz_mutants import NETVIZ_ALTERNATIVES, NETVIZ_MUTANTS  # noqa: E402 (it builds on the above)

MUTANTS += NETVIZ_MUTANTS
ALTERNATIVES += NETVIZ_ALTERNATIVES
