"""Submissions for the autograder's own tests, built as patches of the answer key.

A submission is a copy of source/image_captioning/captioning with some edits applied:
- Patch(file, old, new): replace a snippet that must occur exactly once (so an edit of the
  source cannot silently turn a mutant into the answer key);
- Body(file, function, new): replace the whole solution region of one function or method.

MUTANTS are typical student mistakes with the units they must lose points on; ALTERNATIVES are
correct implementations written differently, which must get full marks.
"""
import re
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path
from autograder.course import RELEASE_DIR, SOLUTIONS_DIR, SOURCE_DIR

ROOT = Path(__file__).resolve().parents[1]
SOURCE = SOURCE_DIR
RELEASE = RELEASE_DIR
SOLUTIONS = SOLUTIONS_DIR
LAYERS, MODEL = "captioning/rnn_layers.py", "captioning/classifiers/rnn.py"
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
    mutant("sample_start_in_column_0", [Patch(MODEL, "        for t in range(max_length):\n            x, _ = word_embedding_forward",
                                              "        captions[:, 0] = self._start\n"
                                              "        for t in range(1, max_length):\n            x, _ = word_embedding_forward")],
           {RNN_SAMPLE, LSTM_SAMPLE}, "writes <START> in column 0"),
    mutant("sample_lstm_c0_from_features", [Patch(MODEL, "c = np.zeros_like(h)", "c = h.copy()")],
           {LSTM_SAMPLE}, "LSTM sampling starts the cell state at the projected features"),
    mutant("zero_init", [Patch(MODEL, "self.params[k] = v.astype(self.dtype)",
                               "self.params[k] = np.zeros_like(v).astype(self.dtype)")],
           {"overfit (rnn)", "overfit (lstm)"}, "all parameters initialised to zero: nothing but b_vocab learns",
           units=(RNN_LOSS, RNN_SAMPLE, "overfit (rnn)", LSTM_LOSS, LSTM_SAMPLE, "overfit (lstm)")),
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
