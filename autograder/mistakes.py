"""The corpus of typical mistakes, as data: one place shared by the grader's diagnosis
(autograder/diagnosis.py), the release's notebook fingerprints (tools/release.py) and the tests
(tests/mutants.py builds a submission of each).

A mistake is the answer key with some edits applied (the variant), the units it must lose points on
(`lost`, each caught on exactly those units), a short id, a note for staff (`what`) and the hint a
student whose code behaves like it is shown (`HINTS`, below: what to check, never what to type).
Edits of the reference package's source text (source/image_captioning/captioning):
- Patch(file, old, new): replace a snippet that must occur exactly once (so an edit of the
  source cannot silently turn a mistake into the answer key);
- Body(file, function, new): replace the whole solution region of one function or method;
- Append(file, code): add code at the end of a file.

Grader side only: this file is never copied into release/ nor into the sandboxed child (it holds
pieces of the answer key). The Gradescope bundle takes it with the rest of autograder/.
"""
import dataclasses
import re
import textwrap
from dataclasses import dataclass

from .units import BY_NAME

LAYERS, MODEL = "captioning/rnn_layers.py", "captioning/classifiers/rnn.py"
T_LAYERS, T_MODEL = "captioning/transformer_layers.py", "captioning/classifiers/transformer.py"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
RNN_LOSS, LSTM_LOSS = "CaptioningRNN.loss (rnn)", "CaptioningRNN.loss (lstm)"
RNN_SAMPLE, LSTM_SAMPLE = "CaptioningRNN.sample (rnn)", "CaptioningRNN.sample (lstm)"
MHA, MHA_B = "multihead_attention_forward", "multihead_attention_backward"
DEC, DEC_B = "decoder_layer_forward", "decoder_layer_backward"
T_LOSS, T_SAMPLE, T_OVERFIT = "CaptioningTransformer.loss", "CaptioningTransformer.sample", "overfit (transformer)"
BEAM, T_BEAM = "CaptioningRNN.beam_search", "CaptioningTransformer.beam_search"
NV = "captioning/net_visualization_pytorch.py"
SALIENCY, FOOLING, STEP = "compute_saliency_maps", "make_fooling_image", "class_visualization_update_step"


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
class Mistake:
    id: str
    edits: tuple
    lost: frozenset            # the units it must lose points on (and only those)
    what: str = ""             # for staff
    units: tuple = None        # the units to grade it on in tests (None: the numpy notebooks' units but the training ones)
    hint: str = ""             # for students: HINTS[id]
    hinted: frozenset = None   # the units diagnosed, when not all of `lost` but the training ones

    @property
    def diagnosed(self):
        """The units whose feedback names this mistake: those it loses but the training ones (a
        trained model is not matched against the mistakes' training runs), unless said otherwise."""
        if self.hinted is not None:
            return self.hinted
        return frozenset(u for u in self.lost if not BY_NAME[u].training)


def mistake(id, edits, lost, what, units=None, hinted=None):
    return Mistake(id, tuple(edits), frozenset(lost), what, units, hint="",
                   hinted=None if hinted is None else frozenset(hinted))


# ---------------------------------------------------------------- typical mistakes

MISTAKES = [
    mistake("relu_instead_of_tanh", [Patch(LAYERS, "next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)",
                                          "next_h = np.maximum(0, x.dot(Wx) + prev_h.dot(Wh) + b)")],
           {"rnn_step_forward"}, "ReLU instead of tanh in the RNN step"),
    mistake("rnn_step_no_bias", [Patch(LAYERS, "next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)",
                                       "next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh))")],
            {"rnn_step_forward"}, "forgets the bias"),
    mistake("no_tanh_derivative", [Patch(LAYERS, "da = dnext_h * (1 - next_h ** 2)", "da = dnext_h")],
           {"rnn_step_backward"}, "forgets the 1 - tanh^2 factor"),
    mistake("db_wrong_axis", [Patch(LAYERS, "db = da.sum(axis=0)\n    ### END SOLUTION\n    return dx, dprev_h, dWx, dWh, db",
                                   "db = da.sum(axis=1)\n    ### END SOLUTION\n    return dx, dprev_h, dWx, dWh, db")],
           {"rnn_step_backward"}, "db summed over the hidden axis: shape (N,) instead of (H,)"),
    mistake("rnn_forward_off_by_one", [Patch(LAYERS, "    for t in range(T):\n        prev_h, step_cache = rnn_step_forward",
                                            "    for t in range(T - 1):\n        prev_h, step_cache = rnn_step_forward")],
           {"rnn_forward"}, "time loop stops one step early"),
    mistake("rnn_forward_h0_every_step", [Patch(LAYERS, "prev_h, step_cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)",
                                                "prev_h, step_cache = rnn_step_forward(x[:, t], h0, Wx, Wh, b)")],
            {"rnn_forward"}, "every step starts from h0"),
    mistake("rnn_backward_no_carry", [Patch(LAYERS, "rnn_step_backward(dh[:, t] + dprev_h, cache[t])",
                                           "rnn_step_backward(dh[:, t], cache[t])")],
           {"rnn_backward"}, "does not carry dprev_h from one step to the previous one"),
    mistake("rnn_backward_overwrites_dW", [Patch(LAYERS, "dWx, dWh, db = (sum(g[i] for g in grads) for i in (2, 3, 4))",
                                                "dWx, dWh, db = (grads[-1][i] for i in (2, 3, 4))")],
           {"rnn_backward"}, "keeps the weight gradients of one step instead of summing over time"),
    mistake("rnn_forward_squeezed_step_input", [
        Patch(LAYERS, "prev_h, step_cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)",
              "prev_h, step_cache = rnn_step_forward(x[:, t, :].squeeze(), prev_h, Wx, Wh, b)")],
            {"rnn_backward"}, "caches x[:, t, :].squeeze(): the backward pass breaks on a batch of one (caught by "
            "rnn_backward's own N=1 check: the loss, failing on it, is retried with it swapped and keeps its points; a "
            "crash matches no variant)", hinted=()),
    mistake("embedding_flattened", [Patch(LAYERS, "out = W[x]", "out = W[x.reshape(-1)]")],
           {"word_embedding_forward"}, "returns (N*T, D) instead of (N, T, D)"),
    mistake("embedding_transposed_indices", [Patch(LAYERS, "out = W[x]", "out = W[x.T]")],
            {"word_embedding_forward"}, "looks up x.T: (T, N, D) instead of (N, T, D)"),
    mistake("embedding_fancy_index_add", [Patch(LAYERS, "np.add.at(dW, x, dout)", "dW[x] += dout")],
           {"word_embedding_backward"}, "dW[x] += dout loses repeated words"),
    mistake("embedding_returns_none", [Patch(LAYERS, "np.add.at(dW, x, dout)", "dW = np.add.at(dW, x, dout)")],
           {"word_embedding_backward"}, "dW = np.add.at(...) makes dW None"),
    mistake("lstm_gate_order_ifgo", [Patch(LAYERS, "i, f, o = (sigmoid(a[:, k * H:(k + 1) * H]) for k in range(3))\n    g = np.tanh(a[:, 3 * H:])",
                                          "i, f, g, o = np.split(a, 4, axis=1)\n    i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)")],
           {"lstm_step_forward"}, "gates split as i, f, g, o"),
    mistake("lstm_gate_order_ifgo_both", [
        Patch(LAYERS, "i, f, o = (sigmoid(a[:, k * H:(k + 1) * H]) for k in range(3))\n    g = np.tanh(a[:, 3 * H:])",
              "i, f, g, o = np.split(a, 4, axis=1)\n    i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)"),
        Patch(LAYERS, "dnext_h * tanh_c * o * (1 - o),\n        dc * i * (1 - g ** 2),",
              "dc * i * (1 - g ** 2),\n        dnext_h * tanh_c * o * (1 - o),")],
            {"lstm_step_forward", "lstm_step_backward"},
            "gates split as i, f, g, o in the step forward and backward alike: the backward's public check passes "
            "against its own forward (as in the notebook), its hidden ones fail (after a retry with the reference "
            "forward: no variant to match there)", hinted={"lstm_step_forward"}),
    mistake("lstm_tanh_prev_c", [Patch(LAYERS, "tanh_c = np.tanh(next_c)", "tanh_c = np.tanh(prev_c)")],
           {"lstm_step_forward"}, "next_h = o * tanh(prev_c)"),
    mistake("lstm_swapped_weights", [Patch(LAYERS, "a = x.dot(Wx) + prev_h.dot(Wh) + b\n    i, f, o",
                                          "a = x.dot(Wh) + prev_h.dot(Wx) + b\n    i, f, o")],
           {"lstm_step_forward"}, "multiplies x by Wh and prev_h by Wx (raises)"),
    mistake("lstm_dprev_c_without_dh", [Patch(LAYERS, "dprev_c = dc * f", "dprev_c = dnext_c * f")],
           {"lstm_step_backward"}, "dprev_c ignores the path through next_h"),
    mistake("lstm_step_backward_no_g_derivative", [Patch(LAYERS, "dc * i * (1 - g ** 2),", "dc * i,")],
            {"lstm_step_backward"}, "forgets the derivative of the g gate's tanh"),
    mistake("lstm_forward_cell_not_carried", [
        Patch(LAYERS, "prev_h, prev_c, step_cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)",
              "prev_h, _, step_cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)")],
            {"lstm_forward"}, "the cell state stays zero: never carried to the next step"),
    mistake("lstm_c0_is_h0", [Patch(LAYERS, "prev_h, prev_c, step_caches = h0, np.zeros_like(h0), []",
                                   "prev_h, prev_c, step_caches = h0, h0, []")],
           {"lstm_forward"}, "initial cell state h0 instead of zeros"),
    mistake("lstm_backward_no_dc_carry", [Patch(LAYERS, "lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])",
                                               "lstm_step_backward(dh[:, t] + dprev_h, np.zeros_like(dprev_c), cache[t])")],
           {"lstm_backward"}, "does not carry the cell-state gradient between steps"),
    mistake("lstm_backward_last_step_dW", [Patch(LAYERS, "dWx, dWh, db = (sum(g[i] for g in grads) for i in (3, 4, 5))",
                                                "dWx, dWh, db = (grads[0][i] for i in (3, 4, 5))")],
           {"lstm_backward"}, "weight gradients of the first step only"),
    mistake("loss_no_mask", [Patch(MODEL, "temporal_softmax_loss(scores, captions_out, mask)",
                                  "temporal_softmax_loss(scores, captions_out, np.ones_like(mask))")],
           {RNN_LOSS}, "does not mask <NULL> targets (one bug in the method both cells use: charged once)"),
    mistake("loss_no_shift", [Patch(MODEL, "word_embedding_forward(captions_in, W_embed)",
                                   "word_embedding_forward(captions_out, W_embed)")],
           {RNN_LOSS, LSTM_LOSS}, "feeds the targets as inputs (no shift: the lstm unit passes no public check "
           "of its own, so it is charged too)"),
    mistake("sample_no_feedback", [Patch(MODEL, "words = np.argmax(h.dot(W_vocab) + b_vocab, axis=1)\n            captions[:, t] = words",
                                        "captions[:, t] = np.argmax(h.dot(W_vocab) + b_vocab, axis=1)")],
           {RNN_SAMPLE, LSTM_SAMPLE}, "always feeds <START> (the lstm unit passes no public check of its own: "
           "charged too)"),
    mistake("sample_start_in_column_0", [Patch(MODEL, "words = np.full(N, self._start)\n        for t in range(max_length):",
                                              "words = np.full(N, self._start)\n        captions[:, 0] = self._start\n"
                                              "        for t in range(1, max_length):")],
           {RNN_SAMPLE, LSTM_SAMPLE}, "writes <START> in column 0, where SPEC puts the first sampled word (the lstm "
           "unit passes no public check of its own: charged too)"),
    mistake("sample_lstm_c0_from_features", [Patch(MODEL, "h, _ = affine_forward(features, W_proj, b_proj)\n        c = np.zeros_like(h)",
                                                  "h, _ = affine_forward(features, W_proj, b_proj)\n        c = h.copy()")],
           {LSTM_SAMPLE}, "LSTM sampling starts the cell state at the projected features"),
    mistake("zero_init", [Patch(MODEL, "self.params[k] = v.astype(self.dtype)",
                               "self.params[k] = np.zeros_like(v).astype(self.dtype)")],
           {"overfit (rnn)", "overfit (lstm)"}, "all parameters initialised to zero: nothing but b_vocab learns",
           units=(RNN_LOSS, RNN_SAMPLE, "overfit (rnn)", LSTM_LOSS, LSTM_SAMPLE, "overfit (lstm)")),
]



def lstm_branch_loss(lstm_backward_lines):
    """CaptioningRNN.loss written with one branch per cell type, its lstm backward branch given: a
    bug there is the lstm unit's alone."""
    return Body(MODEL, "loss", """
        h0, proj_cache = affine_forward(features, W_proj, b_proj)
        x, embed_cache = word_embedding_forward(captions_in, W_embed)
        if self.cell_type == "rnn":
            h, cell_cache = rnn_forward(x, h0, Wx, Wh, b)
        else:
            h, cell_cache = lstm_forward(x, h0, Wx, Wh, b)
        scores, vocab_cache = temporal_affine_forward(h, W_vocab, b_vocab)
        loss, dscores = temporal_softmax_loss(scores, captions_out, mask)
        dh, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, vocab_cache)
        if self.cell_type == "rnn":
            dx, dh0, grads["Wx"], grads["Wh"], grads["b"] = rnn_backward(dh, cell_cache)
        else:
%s
        grads["W_embed"] = word_embedding_backward(dx, embed_cache)
        _, grads["W_proj"], grads["b_proj"] = affine_backward(dh0, proj_cache)
    """ % textwrap.indent(textwrap.dedent(lstm_backward_lines).strip("\n"), " " * 12))


MISTAKES += [
    mistake("loss_lstm_weight_gradients_swapped", [lstm_branch_loss(
        'dx, dh0, grads["Wh"], grads["Wx"], grads["b"] = lstm_backward(dh, cell_cache)')],
            {LSTM_LOSS}, "the lstm branch stores dWx under Wh and dWh under Wx (the rnn branch is right)"),
    mistake("loss_lstm_no_h0_gradient", [lstm_branch_loss("""
        dx, _, grads["Wx"], grads["Wh"], grads["b"] = lstm_backward(dh, cell_cache)
        dh0 = np.zeros_like(h0)
    """)], {LSTM_LOSS}, "the lstm branch drops dh0: no gradient reaches W_proj, b_proj (the rnn branch is right)"),
    mistake("sample_rnn_branch_crashes", [Patch(
        MODEL, "h, _ = rnn_step_forward(x, h, Wx, Wh, b)\n            else:\n                h, c, _ = lstm_step_forward("
               "x, h, c, Wx, Wh, b)\n            words = np.argmax",
        "h, _ = rnn_step_forward(x, h, Wh, Wx, b)\n            else:\n                h, c, _ = lstm_step_forward("
        "x, h, c, Wx, Wh, b)\n            words = np.argmax")],
            {RNN_SAMPLE}, "the rnn branch of sample swaps Wx and Wh and raises; the lstm branch is right and passes "
            "(a crash matches no variant)", hinted=()),
    mistake("sample_lstm_cell_not_carried", [Patch(
        MODEL, "h, c, _ = lstm_step_forward(x, h, c, Wx, Wh, b)\n            words = np.argmax",
        "h, _, _ = lstm_step_forward(x, h, c, Wx, Wh, b)\n            words = np.argmax")],
            {LSTM_SAMPLE}, "LSTM sampling keeps the cell state at zero (the rnn branch is right)"),
]

# ---------------------------------------------------------------- typical Transformer mistakes

MISTAKES += [
    mistake("pe_sin_cos_swapped", [Patch(T_LAYERS, "pe[:, 0::2] = np.sin(t * frequencies)\n    pe[:, 1::2] = np.cos(t * frequencies)",
                                        "pe[:, 0::2] = np.cos(t * frequencies)\n    pe[:, 1::2] = np.sin(t * frequencies)")],
           {"positional_encoding"}, "cosines in the even columns, sines in the odd ones"),
    mistake("pe_exponent_i_not_2i", [Patch(T_LAYERS, "10000.0 ** (-np.arange(0, embed_dim, 2) / embed_dim)",
                                          "10000.0 ** (-np.arange(embed_dim // 2) / embed_dim)")],
           {"positional_encoding"}, "frequency exponent i / D instead of 2i / D"),
    mistake("attention_scaled_by_sqrt_E", [Patch(T_LAYERS, "scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d)",
                                                "scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(E)")],
           {MHA}, "scores divided by sqrt(E) instead of sqrt(E / h)"),
    mistake("attention_mask_after_softmax", [Patch(T_LAYERS, """    if attn_mask is not None:
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
    mistake("attention_heads_split_wrong_axis", [Patch(T_LAYERS, "return x.reshape(N, L, num_heads, d).transpose(0, 2, 1, 3)   # (N, h, L, d)",
                                                      "return x.reshape(N, num_heads, L, d)")],
           {MHA}, "heads split by reshaping (N, L, E) straight to (N, h, L, d)"),
    mistake("attention_softmax_over_queries", [Patch(T_LAYERS, """    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
""", """    scores = scores - scores.max(axis=-2, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-2, keepdims=True)
""")], {MHA}, "softmax over the queries instead of the keys"),
    mistake("attention_backward_softmax_without_sum", [Patch(T_LAYERS, "dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True)) / math.sqrt(d)",
                                                            "dscores = weights * dweights / math.sqrt(d)")],
           {MHA_B}, "softmax backward as if it were elementwise"),
    mistake("attention_backward_forgets_scale", [Patch(T_LAYERS, "dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True)) / math.sqrt(d)",
                                                      "dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))")],
           {MHA_B}, "forgets the 1 / sqrt(d) of the scores in the backward pass"),
    mistake("decoder_missing_residual", [Patch(T_LAYERS, 'x1, ln1_cache = layernorm_forward(x + self_out, params["ln1_gamma"], params["ln1_beta"])',
                                              'x1, ln1_cache = layernorm_forward(self_out, params["ln1_gamma"], params["ln1_beta"])')],
           {DEC}, "no residual connection around the self-attention"),
    mistake("decoder_layer_norm_wrong_axis", [Patch(T_LAYERS, 'out, ln3_cache = layernorm_forward(x2 + ffn_out, params["ln3_gamma"], params["ln3_beta"])',
                                                   'out, ln3_cache = layernorm_forward((x2 + ffn_out).transpose(0, 2, 1), params["ln3_gamma"][:, None], '
                                                   'params["ln3_beta"][:, None])\n    out = out.transpose(0, 2, 1)')],
           {DEC}, "last layer norm over the positions instead of the features"),
    mistake("decoder_cross_attends_to_x", [Patch(T_LAYERS, "multihead_attention_forward(x1, memory, memory, attention_params(params, \"cross_\"),",
                                                "multihead_attention_forward(x1, x1, x1, attention_params(params, \"cross_\"),")],
           {DEC}, "the cross-attention attends to the caption instead of the image"),
    mistake("decoder_backward_x_only_as_query", [Patch(T_LAYERS, "dx = dres1 + dq + dk + dv", "dx = dres1 + dq")],
           {DEC_B}, "x feeds the self-attention's query, key and value: only the query's gradient is kept"),
    mistake("decoder_backward_no_relu_mask", [Patch(T_LAYERS, "dhidden = (dres3 @ W2.T) * (hidden > 0)", "dhidden = dres3 @ W2.T")],
           {DEC_B}, "forgets the ReLU's derivative"),
    mistake("loss_no_causal_mask", [Patch(T_MODEL, "x, cache = decoder_layer_forward(x, memory, self.layer_params(layer), self.num_heads, causal)",
                                         "x, cache = decoder_layer_forward(x, memory, self.layer_params(layer), self.num_heads, None)")],
           {T_LOSS}, "no causal mask at training time: every word sees the words it must predict"),
    mistake("loss_causal_mask_off_by_one", [Patch(T_MODEL, "        causal = np.tril(np.ones((T, T), dtype=bool))\n        layer_caches = []",
                                                 "        causal = np.tril(np.ones((T, T), dtype=bool), k=1)\n        layer_caches = []")],
           {T_LOSS}, "causal mask one step too wide: position t also sees t + 1"),
    mistake("loss_memory_gradient_of_last_layer_only", [Patch(T_MODEL, "dmemory = dmemory + dmemory_layer", "dmemory = dmemory_layer")],
           {T_LOSS}, "keeps the memory gradient of one layer instead of summing over the layers"),
    mistake("loss_no_positional_encoding", [Patch(T_MODEL, "x = x + positional_encoding(T, self.embed_dim).astype(x.dtype)", "pass")],
           {T_LOSS}, "forgets the positional encodings"),
    mistake("sample_last_word_only", [Body(T_MODEL, "sample", """
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
    mistake("sample_no_positional_encoding", [Patch(T_MODEL, "(prefix, W_embed)\n            x = x + pe[:t + 1].astype(x.dtype)",
                                                   "(prefix, W_embed)")],
           {T_SAMPLE}, "samples without positional encodings"),
    mistake("transformer_zero_init", [Patch(T_MODEL, "self.params[k] = v.astype(self.dtype)",
                                           "self.params[k] = np.zeros_like(v).astype(self.dtype)")],
           {T_OVERFIT}, "all Transformer parameters initialised to zero: it cannot learn",
           units=(T_LOSS, T_SAMPLE, T_OVERFIT)),
    # Network visualization (PyTorch)
    mistake("saliency_of_the_loss", [Patch(NV, "    correct = scores.gather(1, y.view(-1, 1)).squeeze(1)\n    correct.sum().backward()",
                                          "    torch.nn.functional.cross_entropy(scores, y).backward()")],
           {SALIENCY}, "the gradient of the loss instead of the correct class's score", units=(SALIENCY,)),
    mistake("saliency_sum_over_channels", [Patch(NV, "saliency = X.grad.abs().max(dim=1).values",
                                                "saliency = X.grad.abs().sum(dim=1)")],
           {SALIENCY}, "sums over the colour channels instead of taking the maximum", units=(SALIENCY,)),
    mistake("saliency_no_abs", [Patch(NV, "saliency = X.grad.abs().max(dim=1).values",
                                     "saliency = X.grad.max(dim=1).values")],
           {SALIENCY}, "no absolute value of the gradient", units=(SALIENCY,)),
    mistake("saliency_train_mode", [Patch(NV, "    model.eval()\n    X = X.clone()", "    X = X.clone()")],
           {SALIENCY}, "leaves the model in train mode (dropout on)", units=(SALIENCY,),
           hinted=()),  # not diagnosed: dropout draws new masks on every run, so no two runs agree
    mistake("fooling_unnormalised_step", [Patch(NV, "X_fooling += learning_rate * g / g.norm()",
                                               "X_fooling += learning_rate * g")],
           {FOOLING}, "the step is the raw gradient, not normalised", units=(FOOLING,)),
    mistake("fooling_descent", [Patch(NV, "X_fooling += learning_rate * g / g.norm()",
                                     "X_fooling -= learning_rate * g / g.norm()")],
           {FOOLING}, "gradient descent on the target's score", units=(FOOLING,),
           hinted=()),  # not diagnosed: its image after 100 steps away from the target matches no run within 1e-6
    mistake("fooling_gradient_not_zeroed", [Patch(NV, "            X_fooling += learning_rate * g / g.norm()\n"
                                                 "            X_fooling.grad.zero_()\n",
                                                 "            X_fooling += learning_rate * g / g.norm()\n")],
           {FOOLING}, "the gradient accumulates over the steps (never zeroed)", units=(FOOLING,)),
    mistake("fooling_gives_up_after_20", [Patch(NV, "for _ in range(100):", "for _ in range(20):")],
           {FOOLING}, "gives up after 20 steps (the specified loop takes up to 100)", units=(FOOLING,)),
    mistake("class_step_gradient_not_zeroed", [Patch(NV, "        img += learning_rate * g / g.norm()\n"
                                                    "        img.grad.zero_()\n",
                                                    "        img += learning_rate * g / g.norm()\n")],
           {STEP}, "the image's gradient is never cleared: the next step adds to it", units=(STEP,)),
    mistake("class_step_regularisation_sign", [Patch(NV, "objective = model(img)[0, target_y] - l2_reg * (img * img).sum()",
                                                    "objective = model(img)[0, target_y] + l2_reg * (img * img).sum()")],
           {STEP}, "regularises with the wrong sign (rewards a large image)", units=(STEP,)),
    mistake("class_step_descent", [Patch(NV, "img += learning_rate * g / g.norm()", "img -= learning_rate * g / g.norm()")],
           {STEP}, "descent instead of ascent", units=(STEP,)),
    mistake("class_step_unnormalised", [Patch(NV, "img += learning_rate * g / g.norm()", "img += learning_rate * g")],
           {STEP}, "the step is the raw gradient, not normalised", units=(STEP,)),
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

MISTAKES.append(mistake(
    "dict_cache_lstm_tanh_prev_c",
    [LSTM_STEP_DICT_FORWARD, LSTM_STEP_DICT_BACKWARD,
     Patch(LAYERS, "tanh_c=np.tanh(next_c)", "tanh_c=np.tanh(prev_c)"),
     Patch(LAYERS, 'next_h = gates["o"] * np.tanh(next_c)', 'next_h = gates["o"] * np.tanh(prev_c)')],
    # The reference forward's cache does not fit this backward pass, and the backward pass is right
    # for the correct forward, not for its own buggy one (tanh(prev_c)): neither the retry nor the
    # check against numerical gradients of its own forward can credit it. (When the backward pass
    # matches its own forward, it is credited: tests/test_fair_grading.py.)
    {"lstm_step_forward", "lstm_step_backward"}, "own cache layout and a forward bug",
    # Its backward pass is right (for the right forward): the forward's hint is all there is to say.
    hinted={"lstm_step_forward"}))

# Beam search: the mistakes of the two model families.
MISTAKES += [
    mistake("beam_raw_scores", [Patch(MODEL, "log_probs = vocab_scores - np.log(np.exp(vocab_scores).sum(axis=1, keepdims=True))",
                                     "log_probs = vocab_scores")],
           {BEAM}, "ranks hypotheses by summed raw scores, not log-probabilities"),
    mistake("beam_probabilities", [Patch(MODEL, "log_probs = vocab_scores - np.log(np.exp(vocab_scores).sum(axis=1, keepdims=True))",
                                        "log_probs = np.exp(vocab_scores) / np.exp(vocab_scores).sum(axis=1, keepdims=True)")],
           {BEAM}, "adds probabilities instead of log-probabilities"),
    mistake("beam_states_not_reordered", [Patch(MODEL, "h, c, words = h[parents], c[parents], words.ravel()",
                                               "words = words.ravel()")],
           {BEAM}, "keeps each slot's state when the kept hypotheses come from other slots"),
    mistake("beam_cell_state_not_reordered", [Patch(MODEL, "h, c, words = h[parents], c[parents], words.ravel()",
                                                   "h, words = h[parents], words.ravel()")],
           {BEAM}, "LSTM: the hidden states follow their hypotheses, the cell states do not"),
    mistake("beam_never_finishes", [Patch(MODEL, "finished = finished[images, kept] | (words == self._end)",
                                         "finished = finished[images, kept]")],
           {BEAM}, "hypotheses go on after <END>"),
    mistake("beam_returns_last_slot", [Patch(MODEL, "        ### END SOLUTION\n        return captions[:, 0]",
                                            "        ### END SOLUTION\n        return captions[:, -1]")],
           {BEAM}, "returns the worst kept hypothesis, not the best"),
    mistake("beam_search_is_greedy", [Body(MODEL, "beam_search", "return self.sample(features, max_length)"),
                                     Body(T_MODEL, "beam_search", "return self.sample(features, max_length)")],
           {BEAM, T_BEAM}, "a trick: greedy captions passed off as beam search (right for beam_size=1 only)"),
    mistake("transformer_beam_prefixes_not_reordered", [
        Patch(T_MODEL, "prefixes = np.concatenate([prefixes[images, kept], words[:, :, None]], axis=2)",
              "prefixes = np.concatenate([prefixes, words[:, :, None]], axis=2)")],
           {T_BEAM}, "appends each kept word to the prefix in its slot, not to the one it extends"),
    mistake("transformer_beam_never_finishes", [
        Patch(T_MODEL, "finished = finished[images, kept] | (words == self._end)", "finished = finished[images, kept]")],
           {T_BEAM}, "hypotheses go on after <END>"),
    mistake("transformer_beam_raw_scores", [
        Patch(T_MODEL, "log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))", "pass")],
           {T_BEAM}, "ranks hypotheses by summed raw (shifted) scores, not log-probabilities"),
]


# ---------------------------------------------------------------- the hints students see

# One line each, after "This looks like a common mistake: ": the cause and where to look, never code.
# Mistakes that cannot be told apart on a unit's checks share their hint word for word.
GATE_ORDER = ("the gates are read in another order than the assignment's i, f, o, g; check which block of the "
              "activations each gate takes")
SAME_FORWARD_BUG = "next_h is computed from the previous cell state; check which cell state goes through the tanh"
SAME_WEIGHTS = ("the weight gradients come from one timestep only; the weights are shared by every timestep, so "
                "their gradients add up over time")
NEVER_FINISHES = "a hypothesis goes on after <END>; once finished, it must compete unchanged"
# Beams ranked by summed raw scores find the greedy captions on every check here: the trick of
# returning greedy captions and that mistake cannot be told apart, so they share one hint.
RAW_SCORES = ("hypotheses are not ranked by the sum of their words' log-probabilities, or only one is kept; "
              "check each one's score and how many survive a step")
HINTS = {
    # rnn_step_forward, rnn_step_backward
    "relu_instead_of_tanh": "the step's nonlinearity is not the tanh of the vanilla RNN",
    "rnn_step_no_bias": "the bias b is missing from the step; check every term inside the tanh",
    "no_tanh_derivative": ("the gradient skips the derivative of the tanh; check how dnext_h reaches the "
                           "pre-activation"),
    "db_wrong_axis": "db is summed over the wrong axis; it has one entry per hidden unit",
    # rnn_forward, rnn_backward
    "rnn_forward_off_by_one": "the loop over time misses a timestep; check its range and that every h[:, t] is filled",
    "rnn_forward_h0_every_step": ("every timestep starts from h0 instead of the hidden state of the step before; "
                                  "check what the loop passes on"),
    "rnn_backward_no_carry": "the gradient from step t+1 is not added to dh before the step's backward pass",
    "rnn_backward_overwrites_dW": SAME_WEIGHTS,
    # word_embedding_forward, word_embedding_backward
    "embedding_flattened": "the output loses its (N, T) layout; check the shape you return against the docstring",
    "embedding_transposed_indices": "the output's first two axes are swapped; out[n, t] is the vector of word x[n, t]",
    "embedding_fancy_index_add": ("a word that appears several times gets the gradient of one occurrence only; "
                                  "assigning through repeated indices does not add up"),
    "embedding_returns_none": "dW ends up None: the function that accumulates works in place and returns nothing",
    # lstm_step_forward, lstm_step_backward
    "lstm_gate_order_ifgo": GATE_ORDER,
    "lstm_gate_order_ifgo_both": GATE_ORDER,
    "lstm_tanh_prev_c": SAME_FORWARD_BUG,
    "dict_cache_lstm_tanh_prev_c": SAME_FORWARD_BUG,
    "lstm_swapped_weights": ("x and prev_h are each multiplied by the other's weight matrix; compare the shapes of "
                             "Wx and Wh with the docstring"),
    "lstm_dprev_c_without_dh": ("the gradient of prev_c misses the part of the loss that reaches next_c through "
                                "next_h"),
    "lstm_step_backward_no_g_derivative": ("the gradient of the g gate skips the derivative of its tanh; check the "
                                           "derivative of each gate's nonlinearity"),
    # lstm_forward, lstm_backward
    "lstm_c0_is_h0": "the initial cell state is not zero; only the hidden state starts from h0",
    "lstm_forward_cell_not_carried": ("the cell state is not carried from one timestep to the next; check what "
                                      "each step passes on besides the hidden state"),
    "lstm_backward_no_dc_carry": ("the cell state's gradient is not carried back from step t+1 to step t; both "
                                  "states carry gradients between steps"),
    "lstm_backward_last_step_dW": SAME_WEIGHTS,
    # CaptioningRNN.loss, CaptioningRNN.sample, overfit
    "loss_no_mask": "the <NULL> padding counts in the loss; check the mask you give the softmax loss",
    "loss_no_shift": ("the captions are not shifted: the input at step t is word t and its target word t + 1; "
                      "check which part of the captions you embed"),
    "sample_no_feedback": ("each step is fed the same word, not the word sampled at the step before; check what "
                           "the loop embeds"),
    "sample_start_in_column_0": "<START> is written into the captions; their first column is the first sampled word",
    "sample_lstm_c0_from_features": ("the LSTM's cell state does not start at zero when sampling; only the hidden "
                                     "state comes from the image features"),
    "loss_lstm_weight_gradients_swapped": ("the gradients of Wx and Wh are stored under each other's names; check "
                                           "the order of what lstm_backward returns"),
    "loss_lstm_no_h0_gradient": ("W_proj and b_proj get no gradient: check that the gradient of the initial hidden "
                                 "state reaches the projection of the features"),
    "sample_lstm_cell_not_carried": ("the LSTM's cell state is not carried from one sampled word to the next; check "
                                     "what each step returns and what the next one takes"),
    "sample_rnn_branch_crashes": "the rnn branch of sampling raises; check the weights each step takes",
    "rnn_forward_squeezed_step_input": ("a batch of one loses its batch axis somewhere between the forward and the "
                                        "backward pass; check the shapes kept in the cache when N = 1"),
    "zero_init": "the parameters start at zero: nothing but the last bias can learn from there",
    # beam search
    "beam_raw_scores": RAW_SCORES,
    "beam_probabilities": ("probabilities are added up; a hypothesis's score is the sum of its words' "
                           "log-probabilities"),
    "beam_states_not_reordered": ("the hidden states do not follow the hypotheses kept at a step; a kept "
                                  "hypothesis continues from the state of the one it extends"),
    "beam_cell_state_not_reordered": ("the LSTM's cell states do not follow the hypotheses kept at a step (the "
                                      "hidden states do); both must"),
    "beam_never_finishes": NEVER_FINISHES,
    "beam_returns_last_slot": "the captions returned are not those of the best-scoring hypothesis",
    "beam_search_is_greedy": RAW_SCORES,
    "transformer_beam_prefixes_not_reordered": ("each kept word is appended to the prefix in its own slot, not to "
                                                "the prefix it extends"),
    "transformer_beam_never_finishes": NEVER_FINISHES,
    "transformer_beam_raw_scores": RAW_SCORES,
    # positional_encoding, attention
    "pe_sin_cos_swapped": "sines and cosines are swapped: even columns take the sine, odd ones the cosine",
    "pe_exponent_i_not_2i": "the frequencies fall too slowly; check the exponent of 10000 for the column pair 2i, 2i+1",
    "attention_scaled_by_sqrt_E": ("the scores are scaled by the square root of the whole embedding size, not of "
                                   "one head's size"),
    "attention_mask_after_softmax": ("the mask is applied after the softmax, so a row's weights no longer sum to "
                                     "1; masked positions must be left out before it"),
    "attention_heads_split_wrong_axis": ("the heads are split by a reshape that mixes positions and features; each "
                                         "position's features are cut into num_heads blocks"),
    "attention_softmax_over_queries": "the softmax runs over the queries; each query's weights sum to 1 over the keys",
    "attention_backward_softmax_without_sum": ("the softmax's backward pass is treated as elementwise; each weight "
                                               "depends on every score of its row"),
    "attention_backward_forgets_scale": "the backward pass forgets the scaling of the scores",
    # decoder layer
    "decoder_missing_residual": "a residual connection is missing around the self-attention",
    "decoder_layer_norm_wrong_axis": ("a layer norm normalises over the positions; it normalises each position "
                                      "over its features"),
    "decoder_cross_attends_to_x": "the cross-attention attends to the caption; its keys and values come from the image",
    "decoder_backward_x_only_as_query": ("x feeds the self-attention as query, key and value, but its gradient "
                                         "takes one of the three paths only"),
    "decoder_backward_no_relu_mask": "the feed-forward's backward pass forgets the ReLU's derivative",
    # CaptioningTransformer.loss, .sample, overfit
    "loss_no_causal_mask": "no causal mask at training time: every word sees the words it must predict",
    "loss_causal_mask_off_by_one": "the causal mask lets position t see position t + 1",
    "loss_memory_gradient_of_last_layer_only": ("the image's gradient keeps one layer's part; every layer's "
                                                "cross-attention reads the memory, so their gradients add up"),
    "loss_no_positional_encoding": "the positional encodings are not added to the word embeddings",
    "sample_last_word_only": "each step feeds the last word only; the decoder sees the whole prefix at every step",
    "sample_no_positional_encoding": "the positional encodings are missing when sampling",
    "transformer_zero_init": "the parameters start at zero: nothing but the last bias can learn from there",
    # compute_saliency_maps
    "saliency_of_the_loss": ("the saliency differentiates the loss; it is the gradient of each image's correct-class "
                             "score"),
    "saliency_sum_over_channels": "the three colour channels are summed; a pixel's saliency is their largest value",
    "saliency_no_abs": "the map keeps the gradient's sign; a pixel matters by the size of its gradient",
    "saliency_train_mode": "the model is not in eval mode, so dropout changes its scores from call to call",
    # make_fooling_image
    "fooling_unnormalised_step": "each step moves by the raw gradient; it is divided by its norm first",
    "fooling_descent": "the step goes down the target's score; it must climb it",
    "fooling_gives_up_after_20": ("the ascent stops before the model predicts the target; it goes on until it "
                                  "does, for up to 100 steps"),
    "fooling_gradient_not_zeroed": "the image's gradient is not cleared between steps, so every step adds up the old ones",
    # class_visualization_update_step
    "class_step_gradient_not_zeroed": "the image's gradient is not cleared after the step: the next step adds to it",
    "class_step_regularisation_sign": "the L2 term has the wrong sign: it should pull the image towards small values",
    "class_step_descent": "the step goes down the regularised score; it must climb it",
    "class_step_unnormalised": "the step is the raw gradient; it is divided by its norm first",
}
assert set(HINTS) == {m.id for m in MISTAKES}, set(HINTS) ^ {m.id for m in MISTAKES}
MISTAKES = [dataclasses.replace(m, hint=HINTS[m.id]) for m in MISTAKES]
BY_ID = {m.id: m for m in MISTAKES}
assert len(BY_ID) == len(MISTAKES), "two mistakes share an id"


def of_unit(unit):
    """The mistakes diagnosed on a unit, in corpus order."""
    return [m for m in MISTAKES if unit in m.diagnosed]
