"""Public checks of every graded unit: run `check("rnn_forward")` to see where your code stands.

Each Check runs your implementation on fixed inputs (`run`) and compares the outputs with
expected values: numbers printed here (fixed outputs, loss targets) or values computed from an
implementation (numerical gradients of your own forward pass). The autograder runs these very
checks, plus hidden ones, against a reference implementation.
"""
import contextlib
import traceback
from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np

from .gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error


@dataclass
class Check:
    """One graded test of a unit.

    run(impl) -> {name: array} exercises the implementation. expected is either a dict of literal
    values or a function of an implementation giving them (same keys). compare is "close" (largest
    relative error <= tol), "tokens" (captions equal up to the expected first <END>) or "below"
    (each value smaller than the expected bound). evaluate(impl, outputs) -> outputs, when set, turns
    raw outputs into the quantities compared, using a trusted implementation.
    """
    unit: str
    name: str
    run: Callable
    expected: Union[dict, Callable]
    tol: float = 1e-6
    atol: float = 0.0  # "close": an output whose largest absolute error is <= atol passes (gradients
    # that are exactly zero in theory, like the key bias's in attention, are noise numerically)
    compare: str = "close"
    evaluate: Optional[Callable] = None
    public: bool = True
    backward_of: Optional[tuple] = None  # (layer, inputs, seed) of a layer's backward-pass check
    seeded: bool = False  # run and evaluate take a seed= (the grader picks a fresh one each grade)
    gate: bool = False  # the unit earns nothing unless this check passes (large inputs, hidden)
    probe: Optional[tuple] = None  # (name in PROBES, args, kwargs) of run: how a check travels as plain data

    @property
    def title(self):
        return "%s: %s" % (self.unit, self.name)


class Impl:
    """An implementation of the assignment (a `captioning` package) as the checks see it.

    Functions called through `call` are watched: one that changes its input arrays (or the arrays
    of a dict argument) in place leaves a warning in `warnings`. A layer function is looked up in
    transformer_layers when its name is in TRANSFORMER_FUNCTIONS, else in rnn_layers.
    """

    def __init__(self, package_modules):
        self.rnn_layers = package_modules["rnn_layers"]
        self.transformer_layers = package_modules["transformer_layers"]
        self.model_module = package_modules["classifiers.rnn"]
        self.transformer_module = package_modules["classifiers.transformer"]
        self.solver_module = package_modules["captioning_solver"]
        self.net_visualization = package_modules.get("net_visualization_pytorch")
        self.warnings = []

    def call(self, name, *args):
        module = self.transformer_layers if name in TRANSFORMER_FUNCTIONS else self.rnn_layers
        watched = [(i, a) for i, a in enumerate(args) if isinstance(a, np.ndarray)]
        watched += [(i, a) for i, d in enumerate(args) if isinstance(d, dict)
                    for a in d.values() if isinstance(a, np.ndarray)]
        before = [(i, a, a.copy()) for i, a in watched]
        result = getattr(module, name)(*args)
        for i, new, old in before:
            if not (old.shape == new.shape and np.array_equal(old, new, equal_nan=True)):
                note = "%s changed its input argument %d in place" % (name, i + 1)
                if note not in self.warnings:
                    self.warnings.append(note)
        return result

    def model(self, word_to_idx, cell, dtype=np.float64, **dims):
        return self.model_module.CaptioningRNN(word_to_idx, cell_type=cell, dtype=dtype, **dims)

    def transformer(self, word_to_idx, dtype=np.float64, **dims):
        return self.transformer_module.CaptioningTransformer(word_to_idx, dtype=dtype, **dims)


TRANSFORMER_FUNCTIONS = ("positional_encoding", "multihead_attention_forward", "multihead_attention_backward",
                         "layernorm_forward", "layernorm_backward", "decoder_layer_forward", "decoder_layer_backward")
MODULES = ("rnn_layers", "transformer_layers", "classifiers.rnn", "classifiers.transformer", "captioning_solver")
# Modules imported only when a check first uses them: the network visualization's, which imports
# PyTorch (a second or two): the numpy units' checks never pay for it.
LAZY_MODULES = ("net_visualization_pytorch",)


class LazyModule:
    """Stands for a module imported by load() on first use of an attribute."""

    def __init__(self, load):
        self.__dict__["_load"], self.__dict__["_module"] = load, None

    def __getattr__(self, name):
        if self.__dict__["_module"] is None:
            self.__dict__["_module"] = self.__dict__["_load"]()
        return getattr(self.__dict__["_module"], name)

    def __setattr__(self, name, value):
        self.__getattr__("__name__")
        setattr(self.__dict__["_module"], name, value)


def load_impl(package):
    """Impl for an imported `captioning` package (or a package of another name, same layout)."""
    import functools
    import importlib
    modules = {n: importlib.import_module(package.__name__ + "." + n) for n in MODULES}
    modules.update({n: LazyModule(functools.partial(importlib.import_module, package.__name__ + "." + n))
                    for n in LAZY_MODULES})
    return Impl(modules)


# ---------------------------------------------------------------- inputs

def linspace_inputs(spec):
    """{name: (lo, hi, shape)} -> arrays of np.linspace(lo, hi, size).reshape(shape)."""
    return {k: np.linspace(lo, hi, num=int(np.prod(shape))).reshape(shape) for k, (lo, hi, shape) in spec.items()}


def random_inputs(seed, shapes, dtype=np.float64):
    """{name: shape} -> standard normal arrays from a fixed seed."""
    rng = np.random.RandomState(seed)
    return {k: rng.randn(*shape).astype(dtype) for k, shape in shapes.items()}


def rnn_shapes(N, D, H, T=None, gates=1):
    """Input shapes of the RNN (gates=1) or LSTM (gates=4) step (T=None) or sequence functions."""
    x = (N, D) if T is None else (N, T, D)
    return {"x": x, "h": (N, H), "Wx": (D, gates * H), "Wh": (H, gates * H), "b": (gates * H,)}


# ---------------------------------------------------------------- layer probes

# A layer is named by a string (the recurrent layers: "<layer>_forward" / "<layer>_backward") or,
# for the Transformer layers, by a tuple (kind, num_heads, mask), kind "attention" or "decoder" and
# mask None, "causal" or "padding" (see attention_mask). Inputs are dicts of arrays.
STEP_ARGS = {"rnn_step": ("x", "h", "Wx", "Wh", "b"), "lstm_step": ("x", "h", "c", "Wx", "Wh", "b"),
             "rnn": ("x", "h", "Wx", "Wh", "b"), "lstm": ("x", "h", "Wx", "Wh", "b")}
GRAD_NAMES = {"rnn_step": ("x", "h", "Wx", "Wh", "b"), "lstm_step": ("x", "h", "c", "Wx", "Wh", "b"),
              "rnn": ("x", "h", "Wx", "Wh", "b"), "lstm": ("x", "h", "Wx", "Wh", "b")}
ATTENTION_KEYS = ("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo")
LAYER_SEQUENCES = {"attention": ("query", "key", "value"), "decoder": ("x", "memory")}


def attention_mask(kind, S, T):
    """The (S, T) boolean mask of a Transformer layer check: None, "causal" (query i may attend to
    keys j <= i) or "padding" (the last one or two keys hidden, alternating by row; never all)."""
    if kind is None:
        return None
    if kind == "causal":
        return np.tril(np.ones((S, T), dtype=bool))
    return np.arange(T)[None, :] < np.maximum(1, T - 1 - np.arange(S)[:, None] % 2)


def grad_names(layer, inputs):
    """The inputs a layer's backward pass returns gradients for, in order."""
    return tuple(inputs) if isinstance(layer, tuple) else GRAD_NAMES[layer]


def layer_forward(layer, impl, inputs):
    """({output name: array}, cache) of the layer's forward pass on inputs."""
    if isinstance(layer, tuple):
        kind, num_heads, mask = layer
        first, second = LAYER_SEQUENCES[kind][:2]
        mask = attention_mask(mask, inputs[first].shape[1], inputs[first if kind == "decoder" else second].shape[1])
        if kind == "attention":
            params = {k: inputs[k] for k in ATTENTION_KEYS}
            out = impl.call("multihead_attention_forward", inputs["query"], inputs["key"], inputs["value"],
                            params, num_heads, mask)
        else:
            params = {k: v for k, v in inputs.items() if k not in LAYER_SEQUENCES[kind]}
            out = impl.call("decoder_layer_forward", inputs["x"], inputs["memory"], params, num_heads, mask)
        return {"out": out[0]}, out[-1]
    out = impl.call(layer + "_forward", *(inputs[k] for k in STEP_ARGS[layer]))
    names = {"rnn_step": ("next_h",), "lstm_step": ("next_h", "next_c"), "rnn": ("h",), "lstm": ("h",)}[layer]
    return dict(zip(names, out[:len(names)])), out[-1]


def layer_backward(layer, impl, up, cache, inputs):
    """{"d<input>": gradient} of the layer's backward pass."""
    if isinstance(layer, tuple):
        kind = layer[0]
        sequences = LAYER_SEQUENCES[kind]
        if kind == "attention":
            *dseq, grads = impl.call("multihead_attention_backward", up["dout"], cache)
        else:
            *dseq, grads = impl.call("decoder_layer_backward", up["dout"], cache)
        result = {"d" + k: g for k, g in zip(sequences, dseq)}
        if not isinstance(grads, dict):
            raise TypeError("the parameter gradients are a %s, not a dict" % type(grads).__name__)
        result.update({"d" + k: grads.get(k) for k in inputs if k not in sequences})
        return result
    grads = impl.call(layer + "_backward", *upstream_order(up), cache)
    return {"d" + k: g for k, g in zip(GRAD_NAMES[layer], grads)}


def forward_outputs(layer, impl, inputs):
    """Outputs of the layer's forward pass as a dict (next_h, next_c, h or out)."""
    return layer_forward(layer, impl, inputs)[0]


def upstream(layer, inputs, seed):
    """Upstream gradients for the layer's backward pass, shaped like its forward outputs."""
    rng = np.random.RandomState(seed + 1)
    if isinstance(layer, tuple):
        first = inputs[LAYER_SEQUENCES[layer[0]][0]]
        return {"dout": rng.randn(*first.shape).astype(first.dtype)}
    h = inputs["h"]
    shape = h.shape if layer.endswith("step") else inputs["x"].shape[:2] + h.shape[1:]
    dtype = inputs["x"].dtype
    grads = {"dout": rng.randn(*shape).astype(dtype)}
    if layer == "lstm_step":
        grads["dc"] = rng.randn(*shape).astype(dtype)
    return grads


def upstream_order(up):
    """The upstream gradients in the order the backward pass takes them (dnext_h, then dnext_c)."""
    return (up["dout"], up["dc"]) if "dc" in up else (up["dout"],)


def backward_probe(layer, inputs, seed):
    """run(): forward then backward of the student's layer -> {"d<name>": gradient}."""
    def run(impl):
        _, cache = layer_forward(layer, impl, inputs)
        return layer_backward(layer, impl, upstream(layer, inputs, seed), cache, inputs)
    return run


def numerical_gradients(layer, inputs, seed):
    """expected(): centred-difference gradients of the implementation's own forward pass."""
    def expected(impl):
        up = upstream(layer, inputs, seed)
        grads = {}
        for name in grad_names(layer, inputs):
            x = inputs[name].astype(np.float64)
            args = {k: v.astype(np.float64) for k, v in inputs.items()}

            def f(value, name=name):
                args[name] = value
                outs = forward_outputs(layer, impl, args)
                return sum(np.sum(o * up[k]) for o, k in zip(outs.values(), ("dout", "dc")))
            grads["d" + name] = eval_numerical_gradient(f, x.copy(), verbose=False)
        return grads
    return expected


def own_gradient_probe(layer, inputs, seed, point=(), h=1e-5):
    """run() of one call the grader makes to check your backward pass against your own forward pass
    (inputs in float64). No point: your forward outputs and your backward pass's gradients; point
    (name, index, sign): your forward outputs with that element of input name moved by sign * h.
    The grader makes each call separately and takes the centred differences itself."""
    def run(impl):
        args = {k: v.astype(np.float64) for k, v in inputs.items()}
        if point:
            name, index, sign = point
            args[name].flat[index] += sign * h
            return forward_outputs(layer, impl, args)
        outputs, cache = layer_forward(layer, impl, args)
        return dict(outputs, **layer_backward(layer, impl, upstream(layer, args, seed), cache, args))
    return run


CLOSE = 1e-2  # the largest relative error of a forward pass whose own gradients may judge a backward pass


def own_forward_distance(base, reference):
    """(passed, message): whether your forward outputs (base: own_gradient_probe's with no point)
    are close to the layer's (reference: the reference forward's outputs on the same inputs), as a
    forward must be for its own numerical gradients to judge a backward pass."""
    for key, want in reference.items():
        got = base.get(key)
        if np.shape(got) != want.shape or not np.all(np.isfinite(got)):
            return False, "your forward's %s has another shape or is not finite there" % key
        err = rel_error(np.asarray(got, np.float64), want)
        if err > CLOSE:
            return False, ("your forward's %s is far from this layer's there (relative error %.1e > %.0e): "
                           "its numerical gradients cannot stand in for the layer's" % (key, err, CLOSE))
    return True, "your forward is close to this layer's"


def own_forward_projection(check, outputs, base, reference):
    """(your forward's outputs at a moved point minus base's, at the unmoved one) . the check's
    upstream gradient: all the grader keeps of a moved point's answer. reference gives the
    forward's output names and shapes."""
    layer, inputs, seed = check.backward_of
    up = upstream(layer, {k: v.astype(np.float64) for k, v in inputs.items()}, seed)
    direction = np.concatenate([u.ravel() for u in upstream_order(up)])

    def flat(outputs):
        if any(np.shape(outputs.get(k)) != v.shape for k, v in reference.items()):
            raise ValueError("your forward's outputs have another shape at a moved point")
        return np.concatenate([np.ravel(outputs[k]).astype(np.float64) for k in reference])
    return float((flat(outputs) - flat(base)) @ direction)


def own_gradient_compare(check, base, moved, h=1e-5):
    """(passed, message): your gradients (base) against centred differences of your forward outputs
    at the points the grader moved (moved: {(name, index, sign): own_forward_projection})."""
    layer, inputs, seed = check.backward_of
    worst, worst_name = 0.0, ""
    for name in grad_names(layer, inputs):
        analytic = np.asarray(base["d" + name], np.float64)
        if analytic.shape != inputs[name].shape:
            return False, "d%s has shape %s, expected %s" % (name, analytic.shape, inputs[name].shape)
        index = sorted({i for n, i, _ in moved if n == name})
        numerical = np.array([(moved[name, i, 1] - moved[name, i, -1]) / (2 * h) for i in index])
        analytic = analytic.ravel()[index]
        if not (np.all(np.isfinite(analytic)) and np.all(np.isfinite(numerical))):
            return False, "d%s or your forward's outputs contain NaN or infinity" % name
        err = rel_error(analytic, numerical)
        if err > worst and not (err > check.tol and check.atol
                                and np.max(np.abs(analytic - numerical), initial=0.0) <= check.atol):
            worst, worst_name = err, "d" + name
    tol = max(check.tol, 1e-6)
    if worst > tol:
        return False, "%s: largest relative error %.2e against your own forward exceeds %.0e" % (worst_name, worst, tol)
    return True, "largest relative error %.2e (tolerance %.0e)" % (worst, tol)


def forward_probe(layer, inputs, pick=None):
    """run(): the student's forward outputs, optionally reduced by pick (e.g. some rows)."""
    def run(impl):
        outs = forward_outputs(layer, impl, inputs)
        return {k: (pick(v) if pick else v) for k, v in outs.items()}
    return run


def embedding_forward_probe(x, W):
    def run(impl):
        out, _ = impl.call("word_embedding_forward", x, W)
        return {"out": out}
    return run


def embedding_backward_probe(x, W, seed):
    def run(impl):
        out, cache = impl.call("word_embedding_forward", x, W)
        dout = np.random.RandomState(seed).randn(*out.shape).astype(W.dtype)
        return {"dW": impl.call("word_embedding_backward", dout, cache)}
    return run


def embedding_numerical_gradient(x, W, seed):
    def expected(impl):
        dout = np.random.RandomState(seed).randn(*x.shape, W.shape[1])
        def f(w):
            return impl.call("word_embedding_forward", x, w)[0]
        return {"dW": eval_numerical_gradient_array(f, W.astype(np.float64).copy(), dout)}
    return expected


# ---------------------------------------------------------------- model probes

TOY_VOCAB = {"<NULL>": 0, "cat": 2, "dog": 3}
SAMPLE_VOCAB = {w: i for i, w in enumerate("<NULL> <START> <END> a cat dog sat on the mat".split())}


def linspace_model(impl, cell, N=10, D=20, W=30, H=40):
    """The model of the public loss check: every parameter a linspace(-1.4, 1.3)."""
    model = impl.model(TOY_VOCAB, cell, input_dim=D, wordvec_dim=W, hidden_dim=H)
    for k, v in model.params.items():
        model.params[k] = np.linspace(-1.4, 1.3, num=v.size).reshape(*v.shape)
    return model


def loss_value_probe(cell, features_range, T=13):
    def run(impl):
        model = linspace_model(impl, cell)
        N, D = 10, 20
        features = np.linspace(*features_range, num=N * D).reshape(N, D)
        captions = (np.arange(N * T) % len(TOY_VOCAB)).reshape(N, T)
        loss, _ = model.loss(features, captions)
        return {"loss": np.asarray(loss)}
    return run


def random_model(impl, cell, seed, vocab, dtype=np.float64, D=4, W=5, H=6, scale=1.0):
    """A small model whose parameters are standard normal from a fixed seed (times scale)."""
    model = impl.model(vocab, cell, dtype=dtype, input_dim=D, wordvec_dim=W, hidden_dim=H)
    rng = np.random.RandomState(seed)
    for k in sorted(model.params):
        model.params[k] = (scale * rng.randn(*model.params[k].shape)).astype(dtype)
    return model


def model_batch(seed, vocab_size, N, T, D, pad=False, dtype=np.float64):
    """Features and captions (N, T) for a model check; pad=True ends captions early with <NULL>."""
    rng = np.random.RandomState(seed)
    features = rng.randn(N, D).astype(dtype)
    captions = rng.randint(1, vocab_size, size=(N, T))
    if pad:
        for i, length in enumerate(rng.randint(2, T, size=N)):
            captions[i, length:] = 0
    return features, captions


def model_grad_probe(cell, seed, vocab, N=2, T=3, pad=False, dtype=np.float64, **dims):
    """run(): loss and gradients of the student's model on a random model and batch (dims:
    random_model's D, W, H and scale; a small model by default)."""
    def run(impl):
        model = random_model(impl, cell, seed, vocab, dtype, **dims)
        features, captions = model_batch(seed, len(vocab), N, T, dims.get("D", 4), pad, dtype)
        loss, grads = model.loss(features, captions)
        return dict({"loss": np.asarray(loss)}, **{"d" + k: np.asarray(g) for k, g in grads.items()})
    return run


def loss_and_numerical_gradients(model, features, captions, h, loss=None):
    """{"loss": ..., "d<param>": centred-difference gradient of the loss} of a model on a batch; loss:
    the loss's right value there, when given (a loss computing something else fails, whatever its
    gradients)."""
    def f(_):
        return model.loss(features, captions)[0]
    out = {"loss": np.asarray(f(None) if loss is None else loss)}
    for k in sorted(model.params):
        out["d" + k] = eval_numerical_gradient(f, model.params[k], verbose=False, h=h)
    return out


def model_numerical_gradient(cell, seed, vocab, N=2, T=3, pad=False, loss=None):
    def expected(impl):
        model = random_model(impl, cell, seed, vocab)
        return loss_and_numerical_gradients(model, *model_batch(seed, len(vocab), N, T, 4, pad), h=1e-6, loss=loss)
    return expected


def decode(model, features, max_length, beam_size):
    """{"captions": ...} of greedy sampling (beam_size None) or of beam_search."""
    if beam_size is None:
        return {"captions": np.asarray(model.sample(features, max_length=max_length))}
    return {"captions": np.asarray(model.beam_search(features, max_length=max_length, beam_size=beam_size))}


def sample_probe(cell, seed, N=4, max_length=8, scale=1.0, beam_size=None, models=1):
    """run(): the captions of small random models (seeds seed, seed + 2, ...; their rows one after
    the other), greedy or (with a beam_size) by beam_search."""
    def run(impl):
        captions = []
        for s in range(seed, seed + 2 * models, 2):
            model = random_model(impl, cell, s, SAMPLE_VOCAB, D=6, W=5, H=7, scale=scale)
            captions.append(decode(model, np.random.RandomState(s + 1).randn(N, 6), max_length, beam_size)["captions"])
        return {"captions": captions[0] if models == 1 else np.concatenate(captions)}
    return run


# ---------------------------------------------------------------- overfitting

def overfit_data(seed=231, num_captions=25, vocab_size=40, T=17, D=64):
    """A small fixed training set in load_coco_data's format: random words, random features."""
    rng = np.random.RandomState(seed)
    words = ["<NULL>", "<START>", "<END>", "<UNK>"] + ["w%d" % i for i in range(vocab_size - 4)]
    captions = np.zeros((num_captions, T), dtype=np.int32)
    for i, length in enumerate(rng.randint(8, T - 1, size=num_captions)):
        captions[i, 0], captions[i, length + 1] = 1, 2
        captions[i, 1:length + 1] = rng.randint(4, vocab_size, size=length)
    return {
        "train_captions": captions, "train_image_idxs": np.arange(num_captions, dtype=np.int32),
        "train_features": rng.randn(num_captions, D).astype(np.float32),
        "train_urls": np.array(["image%d" % i for i in range(num_captions)]),
        "word_to_idx": {w: i for i, w in enumerate(words)}, "idx_to_word": words,
    }


# The training check's fixtures: models small enough to overfit overfit_data's 25 captions within a
# second or two (the notebooks train the course's larger models on real data). The Transformer takes
# 200 Adam steps (final loss below 0.04 for each of 200 seeds tried; 100 steps left 1 seed in 200
# above the bound), the RNN and LSTM 100.
OVERFIT_MODEL = dict(input_dim=64, wordvec_dim=64, hidden_dim=128)
OVERFIT_TRANSFORMER = dict(input_dim=64, wordvec_dim=32, num_heads=2, num_layers=1, ffn_dim=64)
OVERFIT_DTYPE = {"rnn": np.float64, "lstm": np.float32, "transformer": np.float32}
OVERFIT_EPOCHS = {"rnn": 100, "lstm": 100, "transformer": 200}


def overfit_model(impl, kind, word_to_idx, dtype=np.float64):
    """The training check's model of a kind: "rnn", "lstm" or "transformer"."""
    if kind == "transformer":
        return impl.transformer(word_to_idx, dtype=dtype, **OVERFIT_TRANSFORMER)
    return impl.model(word_to_idx, kind, dtype=dtype, **OVERFIT_MODEL)


def overfit_probe(kind):
    """run(): train your model of a kind on overfit_data(seed) with the given solver -> its parameters."""
    def run(impl, seed=231):
        data = overfit_data(seed)
        np.random.seed(seed)
        model = overfit_model(impl, kind, data["word_to_idx"], OVERFIT_DTYPE[kind])
        solver = impl.solver_module.CaptioningSolver(
            model, data, update_rule="adam", num_epochs=OVERFIT_EPOCHS[kind], batch_size=25,
            optim_config={"learning_rate": 1e-2}, verbose=False)
        solver.train()
        return {k: np.asarray(v) for k, v in model.params.items()}
    return run


def overfit_loss(kind):
    """evaluate(): the training loss of the trained parameters on all the captions of
    overfit_data(seed), computed with the trusted model; parameters must have its names and shapes."""
    def evaluate(impl, params, seed=231):
        data = overfit_data(seed)
        model = overfit_model(impl, kind, data["word_to_idx"])
        shapes = {k: np.shape(v) for k, v in params.items()}
        wanted = {k: v.shape for k, v in model.params.items()}
        if shapes != wanted:
            raise ValueError("the trained parameters are %s, expected %s" % (shapes, wanted))
        model.params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        loss, _ = model.loss(data["train_features"].astype(np.float64), data["train_captions"])
        return {"final training loss": np.asarray(loss)}
    return evaluate


# ---------------------------------------------------------------- Transformer probes

def attention_shapes(N, S, T, E):
    shapes = {"query": (N, S, E), "key": (N, T, E), "value": (N, T, E)}
    shapes.update({k: (E, E) if k.startswith("W") else (E,) for k in ATTENTION_KEYS})
    return shapes


def decoder_shapes(N, S, T, E, F):
    shapes = {"x": (N, S, E), "memory": (N, T, E)}
    for kind in ("self_", "cross_"):
        shapes.update({kind + k: (E, E) if k.startswith("W") else (E,) for k in ATTENTION_KEYS})
    for ln in ("ln1", "ln2", "ln3"):
        shapes.update({ln + "_gamma": (E,), ln + "_beta": (E,)})
    shapes.update({"W1": (E, F), "b1": (F,), "W2": (F, E), "b2": (E,)})
    return shapes


def transformer_inputs(seed, shapes, dtype=np.float64):
    """Standard normal arrays from a fixed seed; matrices (2-D, but W_embed) divided by sqrt(their
    rows), as an initialisation would, so that the softmaxes do not saturate; vectors (biases,
    layer-norm shifts) 0.2 randn, layer-norm scales 1 + 0.2 randn."""
    rng = np.random.RandomState(seed)
    inputs = {}
    for k, shape in shapes.items():
        value = rng.randn(*shape)
        if len(shape) == 2 and k != "W_embed":
            value /= np.sqrt(shape[0])
        elif len(shape) == 1:  # biases small; layer norms near their initial scale 1 and shift 0
            value = float(k.endswith("_gamma")) + 0.2 * value
        inputs[k] = value.astype(dtype)
    return inputs


def attention_fixed_inputs(N=1, S=3, T=4, E=8):
    """The fixed inputs of the public attention check (and of the notebook)."""
    inputs = linspace_inputs({"query": (-0.5, 0.7, (N, S, E)), "key": (-0.3, 0.9, (N, T, E)),
                              "value": (-0.8, 0.4, (N, T, E))})
    for i, n in enumerate("qkvo"):
        inputs["W" + n] = np.linspace(-0.4 + 0.1 * i, 0.5 - 0.05 * i, num=E * E).reshape(E, E)
        inputs["b" + n] = np.linspace(-0.1 * i, 0.2, num=E)
    return inputs


def decoder_fixed_inputs(N=2, S=3, T=1, E=8, F=16, seed=0):
    """The fixed inputs of the public decoder-layer check: transformer_inputs from seed 0."""
    return transformer_inputs(seed, decoder_shapes(N, S, T, E, F))


def positional_encoding_probe(max_len, embed_dim, pick=None):
    def run(impl):
        pe = np.asarray(impl.call("positional_encoding", max_len, embed_dim))
        return {"pe": pick(pe) if pick else pe}
    return run


TRANSFORMER_DIMS = dict(input_dim=4, wordvec_dim=8, num_heads=2, num_layers=2, ffn_dim=12)


def linspace_transformer(impl, D=20, E=16, num_heads=4, num_layers=2, F=24):
    """The model of the public Transformer loss check: every parameter a linspace(-1.4, 1.3)."""
    model = impl.transformer(TOY_VOCAB, input_dim=D, wordvec_dim=E, num_heads=num_heads,
                             num_layers=num_layers, ffn_dim=F)
    for k, v in model.params.items():
        model.params[k] = np.linspace(-1.4, 1.3, num=v.size).reshape(*v.shape)
    return model


def transformer_loss_value_probe(features_range=(-1.5, 0.3), N=10, D=20, T=13):
    def run(impl):
        model = linspace_transformer(impl, D=D)
        features = np.linspace(*features_range, num=N * D).reshape(N, D)
        captions = (np.arange(N * T) % len(TOY_VOCAB)).reshape(N, T)
        loss, _ = model.loss(features, captions)
        return {"loss": np.asarray(loss)}
    return run


def random_transformer(impl, seed, vocab, dtype=np.float64, scale=1.0, **dims):
    """A small Transformer whose parameters are drawn as transformer_inputs does; those outside the
    decoder layers (projection, embedding, vocabulary) times scale."""
    dims = dict(TRANSFORMER_DIMS, **dims)
    model = impl.transformer(vocab, dtype=dtype, **dims)
    shapes = {k: model.params[k].shape for k in sorted(model.params)}
    model.params = {k: (v if k.startswith("layer") else scale * v)
                    for k, v in transformer_inputs(seed, shapes, dtype).items()}
    return model


def transformer_grad_probe(seed, vocab, N=2, T=4, pad=False, dtype=np.float64, **dims):
    """run(): loss and gradients of the student's Transformer on a small random model and batch."""
    def run(impl):
        model = random_transformer(impl, seed, vocab, dtype, **dims)
        features, captions = model_batch(seed, len(vocab), N, T, dims.get("input_dim", 4), pad, dtype)
        loss, grads = model.loss(features, captions)
        return dict({"loss": np.asarray(loss)}, **{"d" + k: np.asarray(g) for k, g in grads.items()})
    return run


def transformer_numerical_gradient(seed, vocab, N=2, T=4, loss=None, **dims):
    def expected(impl):
        model = random_transformer(impl, seed, vocab, **dims)
        batch = model_batch(seed, len(vocab), N, T, dims.get("input_dim", 4))
        return loss_and_numerical_gradients(model, *batch, h=1e-5, loss=loss)
    return expected


def transformer_sample_probe(seed, N=4, max_length=8, scale=1.0, beam_size=None, **dims):
    def run(impl):
        model = random_transformer(impl, seed, SAMPLE_VOCAB, scale=scale, **dict(dict(input_dim=6), **dims))
        return decode(model, np.random.RandomState(seed + 1).randn(N, 6), max_length, beam_size)
    return run


def transformer_gradient_check(unit, layer, seed, shapes, tol, public=True, name="numerical gradient check"):
    """A Transformer layer's backward check against centred differences of its forward pass."""
    inputs = transformer_inputs(seed, shapes)
    return Check(unit, name, backward_probe(layer, inputs, seed), numerical_gradients(layer, inputs, seed),
                 tol=tol, atol=1e-9, public=public, backward_of=(layer, inputs, seed))


# ---------------------------------------------------------------- checks sent as plain data

def call_probe(function, *args):
    """run(): {"out": the (first) output} of a layer function called by name on args."""
    def run(impl):
        out = impl.call(function, *args)
        return {"out": out[0] if isinstance(out, tuple) else out}
    return run


PROBES = {f.__name__: f for f in (forward_probe, backward_probe, embedding_forward_probe, embedding_backward_probe,
                                  model_grad_probe, sample_probe, positional_encoding_probe, transformer_grad_probe,
                                  transformer_sample_probe, call_probe)}


def probe_check(unit, name, probe, expected=None, **options):
    """A Check whose run is PROBES[probe[0]](*probe[1], **probe[2]): its probe (a name, and arguments
    that are arrays, numbers, text, tuples and dicts; dtype by name) can travel as plain data.
    expected: by default the same run on a trusted implementation. A backward_probe's check also
    gets backward_of (its layer, inputs and seed)."""
    probe_name, args, kwargs = probe
    run = PROBES[probe_name](*args, **{k: np.dtype(v).type if k == "dtype" else v for k, v in kwargs.items()})
    backward_of = tuple(args) if probe_name == "backward_probe" else None
    return Check(unit, name, run, expected or run, probe=probe, backward_of=backward_of, **options)


# ---------------------------------------------------------------- the public checks

def step_forward_inputs(kind):
    if kind == "rnn":
        N, D, H = 3, 10, 4
        return linspace_inputs({"x": (-0.4, 0.7, (N, D)), "h": (-0.2, 0.5, (N, H)), "Wx": (-0.1, 0.9, (D, H)),
                                "Wh": (-0.3, 0.7, (H, H)), "b": (-0.2, 0.4, (H,))})
    N, D, H = 3, 4, 5
    return linspace_inputs({"x": (-0.4, 1.2, (N, D)), "h": (-0.3, 0.7, (N, H)), "c": (-0.4, 0.9, (N, H)),
                            "Wx": (-2.1, 1.3, (D, 4 * H)), "Wh": (-0.7, 2.2, (H, 4 * H)), "b": (0.3, 0.7, (4 * H,))})


def sequence_forward_inputs(kind):
    if kind == "rnn":
        N, T, D, H = 2, 3, 4, 5
        return linspace_inputs({"x": (-0.1, 0.3, (N, T, D)), "h": (-0.3, 0.1, (N, H)), "Wx": (-0.2, 0.4, (D, H)),
                                "Wh": (-0.4, 0.1, (H, H)), "b": (-0.7, 0.1, (H,))})
    N, D, H, T = 2, 5, 4, 3
    return linspace_inputs({"x": (-0.4, 0.6, (N, T, D)), "h": (-0.4, 0.8, (N, H)), "Wx": (-0.2, 0.9, (D, 4 * H)),
                            "Wh": (-0.3, 0.6, (H, 4 * H)), "b": (0.2, 0.7, (4 * H,))})


def gradient_check(unit, layer, seed, shapes, tol, public=True, name="numerical gradient check"):
    """A backward check: analytic gradients against centred differences of the forward pass."""
    inputs = random_inputs(seed, shapes)
    return Check(unit, name, backward_probe(layer, inputs, seed), numerical_gradients(layer, inputs, seed),
                 tol=tol, public=public, backward_of=(layer, inputs, seed))


def lstm_step_shapes(N, D, H):
    return dict(rnn_shapes(N, D, H, gates=4), c=(N, H))


SAMPLE_RNN = [[5, 0, 5, 1, 5, 7, 3, 7], [0, 7, 8, 5, 6, 8, 2, 7], [0, 7, 6, 8, 2, 7, 7, 0], [7, 6, 8, 2, 7, 7, 0, 7]]
SAMPLE_LSTM = [[4, 4, 8, 8, 2, 4, 8, 8], [4, 8, 8, 8, 8, 8, 7, 8], [9, 3, 4, 8, 2, 8, 7, 4], [4, 8, 8, 7, 8, 8, 8, 8]]
SAMPLE_TRANSFORMER = [[0, 6, 8, 7, 7, 7, 7, 7], [6, 8, 6, 4, 6, 4, 6, 4], [1, 0, 0, 3, 3, 4, 4, 3],
                      [6, 8, 6, 8, 6, 4, 6, 8]]
BEAM_RNN = [[0, 6, 9, 1, 2, 0, 0, 0], [9, 0, 8, 9, 1, 2, 0, 0], [2, 0, 0, 0, 0, 0, 0, 0], [7, 2, 0, 0, 0, 0, 0, 0]]
BEAM_TRANSFORMER = [[0, 0, 0, 0, 0, 0, 0, 0], [7, 0, 7, 0, 2, 0, 0, 0], [7, 0, 7, 0, 7, 0, 7, 0],
                    [7, 0, 2, 0, 0, 0, 0, 0]]
EMBED_X = np.array([[0, 3, 1, 2], [2, 1, 0, 3]])
EMBED_GRAD_X = np.random.RandomState(231).randint(5, size=(50, 3))

PUBLIC_CHECKS = [
    Check("rnn_step_forward", "fixed inputs, rows 0 and 2 of next_h",
          forward_probe("rnn_step", step_forward_inputs("rnn"), lambda h: h[[0, 2]]),
          {"next_h": np.array([[-0.58172089, -0.50182032, -0.41232771, -0.31410098],
                               [0.97934501, 0.99144213, 0.99646691, 0.99854353]])}),
    gradient_check("rnn_step_backward", "rnn_step", 231, rnn_shapes(4, 5, 6), 1e-7),
    Check("rnn_forward", "fixed inputs, h[0, 0] and h[1, 2]",
          forward_probe("rnn", sequence_forward_inputs("rnn"), lambda h: h[[0, 1], [0, 2]]),
          {"h": np.array([[-0.42070749, -0.27279261, -0.11074945, 0.05740409, 0.22236251],
                          [-0.51014825, -0.30524429, -0.06755202, 0.17806392, 0.40333043]])}),
    gradient_check("rnn_backward", "rnn", 231, rnn_shapes(2, 3, 5, T=10), 1e-6),
    Check("word_embedding_forward", "fixed inputs, out[0, 1]",
          embedding_forward_probe(EMBED_X, np.linspace(0, 1, num=15).reshape(5, 3)),
          {"out": np.array([[[0.0, 0.07142857, 0.14285714], [0.64285714, 0.71428571, 0.78571429],
                             [0.21428571, 0.28571429, 0.35714286], [0.42857143, 0.5, 0.57142857]],
                            [[0.42857143, 0.5, 0.57142857], [0.21428571, 0.28571429, 0.35714286],
                             [0.0, 0.07142857, 0.14285714], [0.64285714, 0.71428571, 0.78571429]]])}),
    Check("word_embedding_backward", "numerical gradient check",
          embedding_backward_probe(EMBED_GRAD_X, random_inputs(231, {"W": (5, 6)})["W"], 232),
          embedding_numerical_gradient(EMBED_GRAD_X, random_inputs(231, {"W": (5, 6)})["W"], 232), tol=1e-10),
    Check("lstm_step_forward", "fixed inputs, next_h[0] and next_c[2]",
          lambda impl: (lambda o: {"next_h": o["next_h"][0], "next_c": o["next_c"][2]})(
              forward_outputs("lstm_step", impl, step_forward_inputs("lstm"))),
          {"next_h": np.array([0.24635157, 0.28610883, 0.32240467, 0.35525807, 0.38474904]),
           "next_c": np.array([0.74192008, 0.90592151, 1.07717006, 1.25120233, 1.42395676])}),
    gradient_check("lstm_step_backward", "lstm_step", 231, lstm_step_shapes(4, 5, 6), 1e-6),
    Check("lstm_forward", "fixed inputs, h[0, 0] and h[1, 2]",
          forward_probe("lstm", sequence_forward_inputs("lstm"), lambda h: h[[0, 1], [0, 2]]),
          {"h": np.array([[0.01764008, 0.01823233, 0.01882671, 0.0194232],
                          [0.81733511, 0.83677871, 0.85403753, 0.86935314]])}),
    gradient_check("lstm_backward", "lstm", 231, rnn_shapes(2, 3, 6, T=10, gates=4), 1e-6),
    Check("CaptioningRNN.loss (rnn)", "loss target with fixed parameters",
          loss_value_probe("rnn", (-1.5, 0.3)), {"loss": np.array(9.83235591003)}, tol=1e-11),
    Check("CaptioningRNN.loss (rnn)", "numerical gradient check of the whole model",
          model_grad_probe("rnn", 231, TOY_VOCAB),
          model_numerical_gradient("rnn", 231, TOY_VOCAB, loss=3.64490281389), tol=1e-5),
    Check("CaptioningRNN.loss (lstm)", "loss target with fixed parameters",
          loss_value_probe("lstm", (-0.5, 1.7)), {"loss": np.array(9.82445935443)}, tol=1e-11),
    Check("CaptioningRNN.loss (lstm)", "numerical gradient check of the whole model",
          model_grad_probe("lstm", 236, TOY_VOCAB),
          model_numerical_gradient("lstm", 236, TOY_VOCAB, loss=5.20538593745), tol=1e-5),
    Check("CaptioningRNN.sample (rnn)", "greedy decode with fixed parameters",
          sample_probe("rnn", 232), {"captions": np.array(SAMPLE_RNN)}, compare="tokens"),
    Check("CaptioningRNN.sample (lstm)", "greedy decode with fixed parameters",
          sample_probe("lstm", 249, scale=3.0), {"captions": np.array(SAMPLE_LSTM)}, compare="tokens"),
    Check("CaptioningRNN.beam_search", "beam_size=1 gives the greedy captions (rnn)",
          sample_probe("rnn", 232, beam_size=1), {"captions": np.array(SAMPLE_RNN)}, compare="tokens"),
    Check("CaptioningRNN.beam_search", "beam_size=3 with fixed parameters (rnn)",
          sample_probe("rnn", 318, beam_size=3), {"captions": np.array(BEAM_RNN)}, compare="tokens"),
    Check("overfit (rnn)", "training loss after overfitting 25 captions",
          overfit_probe("rnn"), {"final training loss": np.array(0.1)}, compare="below", evaluate=overfit_loss("rnn"),
          seeded=True),
    Check("overfit (lstm)", "training loss after overfitting 25 captions",
          overfit_probe("lstm"), {"final training loss": np.array(0.5)}, compare="below", evaluate=overfit_loss("lstm"),
          seeded=True),
    Check("positional_encoding", "positional_encoding(3, 6), row 1",
          positional_encoding_probe(3, 6, lambda pe: pe[1]),
          {"pe": np.array([0.84147098, 0.54030231, 0.04639922, 0.99892298, 0.00215443, 0.99999768])}, tol=1e-5),
    Check("multihead_attention_forward", "fixed inputs, causal mask, out[0, 0] and out[0, 2, 7]",
          lambda impl: (lambda out: {"out[0, 0]": out[0, 0], "out[0, 2, 7]": out[0, 2, 7]})(
              forward_outputs(("attention", 2, "causal"), impl, attention_fixed_inputs())["out"]),
          {"out[0, 0]": np.array([-0.61056221, -0.56243318, -0.51430415, -0.46617512, -0.41804608, -0.36991705,
                                  -0.32178802, -0.27365899]),
           "out[0, 2, 7]": np.array(0.15857354)}, tol=1e-7),
    transformer_gradient_check("multihead_attention_backward", ("attention", 2, "causal"), 231,
                               attention_shapes(2, 3, 4, 8), 1e-6),
    Check("decoder_layer_forward", "fixed inputs, causal mask, out[0, 1] and out[1, 2]",
          lambda impl: (lambda out: {"out[0, 1]": out[0, 1], "out[1, 2]": out[1, 2]})(
              forward_outputs(("decoder", 2, "causal"), impl, decoder_fixed_inputs())["out"]),
          {"out[0, 1]": np.array([0.87269595, -0.79848903, 0.11546400, 0.80784056, 0.11488830, -2.35508583,
                                  1.55089905, -0.99049838]),
           "out[1, 2]": np.array([0.32680003, -0.81541210, 0.88400060, -0.40109477, 0.37030012, -2.23403063,
                                  2.47956679, -0.81676953])}, tol=1e-7),
    transformer_gradient_check("decoder_layer_backward", ("decoder", 2, "causal"), 231,
                               decoder_shapes(2, 3, 2, 8, 12), 1e-6),
    Check("CaptioningTransformer.loss", "loss target with fixed parameters",
          transformer_loss_value_probe(), {"loss": np.array(9.32830699352)}, tol=1e-11),
    Check("CaptioningTransformer.loss", "numerical gradient check of the whole model",
          transformer_grad_probe(231, TOY_VOCAB, wordvec_dim=4, ffn_dim=6),
          transformer_numerical_gradient(231, TOY_VOCAB, loss=3.29824549731, wordvec_dim=4, ffn_dim=6), tol=1e-5,
          atol=1e-9),
    Check("CaptioningTransformer.sample", "greedy decode with fixed parameters",
          transformer_sample_probe(256, scale=0.5), {"captions": np.array(SAMPLE_TRANSFORMER)}, compare="tokens"),
    Check("CaptioningTransformer.beam_search", "beam_size=1 gives the greedy captions",
          transformer_sample_probe(256, scale=0.5, beam_size=1), {"captions": np.array(SAMPLE_TRANSFORMER)},
          compare="tokens"),
    Check("CaptioningTransformer.beam_search", "beam_size=3 with fixed parameters",
          transformer_sample_probe(337, beam_size=3), {"captions": np.array(BEAM_TRANSFORMER)}, compare="tokens"),
    Check("overfit (transformer)", "training loss after overfitting 25 captions",
          overfit_probe("transformer"), {"final training loss": np.array(1.0)}, compare="below",
          evaluate=overfit_loss("transformer"), seeded=True),
]


# ---------------------------------------------------------------- network visualization (PyTorch)

# The checks' model: a small CNN whose weights come from a numpy seed (the same on every machine,
# no file to read), with a dropout layer, so that a model left in train mode gives other scores.
# Probes import PyTorch when they run (one thread: the grader runs checks side by side).
NETVIZ_UNITS = ("compute_saliency_maps", "make_fooling_image", "class_visualization_update_step")
NETVIZ_CLASSES = 10


def torch_module():
    import torch
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    return torch


def torch_dtype(dtype):
    torch = torch_module()
    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def to_numpy(value):
    """A tensor (or array) as a numpy array, detached from any graph."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def check_model(seed, dtype=np.float64, train=False, classes=NETVIZ_CLASSES):
    """The checks' CNN: conv 3x3 (8) - ReLU - max pool - conv 3x3 (16) - ReLU - average pool to
    2x2 - dropout - linear; weights He-scaled standard normal from seed, parameters frozen, in
    eval mode unless train."""
    torch = torch_module()
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Dropout(0.5), nn.Linear(64, classes))
    rng = np.random.RandomState(seed)
    for p in model.parameters():
        scale = np.sqrt(2.0 / p[0].numel()) if p.dim() > 1 else 0.1
        p.data = torch.from_numpy(scale * rng.randn(*p.shape)).to(torch_dtype(dtype))
        p.requires_grad = False
    return model.train(train)


def check_images(seed, N, H, W, dtype=np.float64):
    """N standard normal images (N, 3, H, W), smoothed a little (neighbour means) so that they
    have structure, as a tensor of dtype."""
    torch = torch_module()
    x = np.random.RandomState(seed).randn(N, 3, H + 1, W + 1)
    x = (x[:, :, 1:, 1:] + x[:, :, :-1, 1:] + x[:, :, 1:, :-1] + x[:, :, :-1, :-1]) / 2
    return torch.from_numpy(x).to(torch_dtype(dtype))


def saliency_probe(seed, N=3, H=16, W=16, dtype=np.float64, pick=None):
    """run(): your saliency maps of check_images(seed) for labels from seed, on check_model(seed)
    handed over in train mode (compute_saliency_maps must put it in eval mode)."""
    def run(impl):
        model = check_model(seed, dtype, train=True)
        X = check_images(seed + 1, N, H, W, dtype)
        y = torch_module().from_numpy(np.random.RandomState(seed + 2).randint(NETVIZ_CLASSES, size=N))
        saliency = to_numpy(impl.net_visualization.compute_saliency_maps(X, y, model))
        return {"saliency": pick(saliency) if pick else saliency}
    return run


def fooling_target(model, X, rank):
    """The class at rank (Python index into the classes sorted by score, lowest first) of the
    model's scores on X: -2 is the runner-up."""
    with torch_module().no_grad():
        return int(model(X)[0].argsort()[rank])


def fooling_probe(seed, H=16, W=16, dtype=np.float64, rank=-2, pick=None):
    """run(): your fooling image of check_images(seed + 1) (N=1) for the class at rank of the
    model's scores (fooling_target), on check_model(seed) in eval mode (pick: the part returned)."""
    def run(impl):
        model = check_model(seed, dtype)
        X = check_images(seed + 1, 1, H, W, dtype)
        y = fooling_target(model, X, rank)
        image = to_numpy(impl.net_visualization.make_fooling_image(X.clone(), y, model))
        return {"image": pick(image) if pick else image}
    return run


def row_5(image):
    """Row 5, columns 3 to 6 of each channel of an image (1, 3, H, W)."""
    return image[0, :, 5, 3:7]


def fooling_outcome(seed, H=16, W=16, dtype=np.float64, rank=-2):
    """evaluate(): of a fooling image, the model's margin (best other class's score minus the
    target's: negative when the model predicts the target) and the change's size relative to the
    image's, computed by the grader."""
    def evaluate(impl, outputs):
        torch = torch_module()
        model = check_model(seed, dtype)
        X = check_images(seed + 1, 1, H, W, dtype)
        y = fooling_target(model, X, rank)
        image = np.asarray(outputs["image"], dtype=np.float64)
        if image.shape != tuple(X.shape):
            raise ValueError("the fooling image has shape %s, expected %s" % (image.shape, tuple(X.shape)))
        with torch.no_grad():
            scores = model(torch.from_numpy(image).to(X.dtype))[0].double().numpy()
        margin = np.delete(scores, y).max() - scores[y]
        change = np.linalg.norm(image - X.double().numpy()) / np.linalg.norm(X.double().numpy())
        return {"score margin of the best other class": np.asarray(margin), "relative change": np.asarray(change)}
    return evaluate


def class_step_probe(seed, target, l2_reg, learning_rate, steps=1, H=16, W=16, dtype=np.float64):
    """run(): the image after `steps` calls of your class_visualization_update_step, starting from
    check_images(seed + 1) (N=1) as a leaf tensor that requires gradients, on check_model(seed)."""
    def run(impl):
        model = check_model(seed, dtype)
        img = check_images(seed + 1, 1, H, W, dtype).requires_grad_()
        for _ in range(steps):
            impl.net_visualization.class_visualization_update_step(img, model, target, l2_reg, learning_rate)
        return {"img": to_numpy(img)}
    return run


PROBES.update({f.__name__: f for f in (saliency_probe, fooling_probe, class_step_probe)})

# The fooling image may differ from the image by at most this fraction of its norm (the reference's
# change is about a tenth of it): the ascent must take small normalised steps.
FOOLING_CHANGE = 0.25

NETVIZ_PUBLIC_CHECKS = [
    Check("compute_saliency_maps", "fixed images and labels, row 5, columns 3 to 8 of each map",
          saliency_probe(231, pick=lambda s: s[:, 5, 3:9]),
          {"saliency": np.array([
              [0.0648913548, 0.0204547148, 0.0326939392, 0.0394428780, 0.0145486646, 0.0240862158],
              [0.0812066643, 0.0252817665, 0.0141261952, 0.0413256834, 0.0127582968, 0.0116067713],
              [0.0233500448, 0.0162232984, 0.0102559263, 0.0137227783, 0.0168080280, 0.0128276152]])},
          tol=1e-6, atol=1e-10),
    Check("make_fooling_image", "the model predicts the target class, the image barely changed",
          fooling_probe(231), {"score margin of the best other class": np.array(0.0),
                               "relative change": np.array(FOOLING_CHANGE)},
          compare="below", evaluate=lambda impl, outputs: fooling_outcome(231)(impl, outputs)),
    # The loop as specified, step for step: targets far away (the lowest-scored class), one of them
    # near the cap of 100 steps, and one not reached at all (the image after exactly 100 steps).
    Check("make_fooling_image", "a target 32 steps away: row 5, columns 3 to 6",
          fooling_probe(232, rank=0, pick=row_5),
          {"image": np.array([[2.3429959719, 2.3380092603, 1.1603899430, 2.7124988568],
                              [-0.0819964554, -0.8781376378, 0.1635693456, -0.1503353194],
                              [-1.3717394522, -0.0124843280, 0.4551071971, -0.1757887429]])},
          tol=1e-6, atol=1e-10),
    Check("make_fooling_image", "a target 87 steps away, 24x24: row 5, columns 3 to 6",
          fooling_probe(235, 24, 24, rank=0, pick=row_5),
          {"image": np.array([[-0.1022060940, -0.1524163764, -0.2752537410, 0.1666374795],
                              [-0.0989472348, 0.1556792928, 0.3643108968, 0.1648642833],
                              [0.0965111830, -0.0083237966, 0.2096523240, 0.3741117165]])},
          tol=1e-6, atol=1e-10),
    Check("make_fooling_image", "a target not reached in 100 steps: row 5, columns 3 to 6 after exactly 100",
          fooling_probe(233, rank=0, pick=row_5),
          {"image": np.array([[0.0125351562, -1.9374892244, -0.4148835845, -0.7935541685],
                              [-1.7133701658, 1.1584787879, -0.0546538772, 2.0438339286],
                              [-0.0698555592, -1.9631512917, -1.0465315236, -1.0076855322]])},
          tol=1e-6, atol=1e-10),
    Check("class_visualization_update_step", "one step, l2_reg=0.05, learning_rate=5: row 7, columns 4 to 7",
          lambda impl: {"img": class_step_probe(231, 3, 0.05, 5.0)(impl)["img"][0, :, 7, 4:8]},
          {"img": np.array([[-1.0781262302, -0.2573150304, -0.4330360384, -0.9264371577],
                            [0.2109130749, 0.5231529233, 1.2206371729, 0.5573687343],
                            [0.2170114398, -1.1650744717, -0.3399583822, 0.2964124483]])},
          tol=1e-6, atol=1e-10),
]
PUBLIC_CHECKS += NETVIZ_PUBLIC_CHECKS


def needs_torch(check):
    """Whether a check runs PyTorch (the sandbox imports it before the check's clock starts)."""
    return check.unit in NETVIZ_UNITS or bool(check.probe and check.probe[0] in
                                               ("saliency_probe", "fooling_probe", "class_step_probe"))


# ---------------------------------------------------------------- comparing and reporting

def caption_tokens(captions, end_token=SAMPLE_VOCAB["<END>"]):
    """Each row as a list, cut after its first <END>."""
    rows = []
    for row in np.asarray(captions).tolist():
        rows.append(row[:row.index(end_token) + 1] if end_token in row else row)
    return rows


def compare(check, outputs, expected):
    """(passed, message) for outputs against expected values under the check's rule."""
    worst, notes = 0.0, []
    for key, want in expected.items():
        if key not in outputs:
            return False, "no output %r was returned" % key
        got, want = np.asarray(outputs[key]), np.asarray(want)
        if check.compare == "tokens":
            if got.ndim != 2 or got.shape[0] != want.shape[0] or got.dtype.kind not in "iuf":
                return False, "%s has shape %s and dtype %s, expected integers of shape (%d, max_length)" % (
                    key, got.shape, got.dtype, want.shape[0])
            got_rows, want_rows = caption_tokens(got), caption_tokens(want)
            if got.shape[0] != want.shape[0] or [g[:len(w)] for g, w in zip(got_rows, want_rows)] != want_rows:
                return False, "captions differ from the expected ones:\n  got      %s\n  expected %s" % (
                    got_rows, want_rows)
            continue
        if got.shape != want.shape:
            return False, "%s has shape %s, expected %s" % (key, got.shape, want.shape)
        if got.dtype.kind not in "fiu":
            return False, "%s has dtype %s, expected numbers" % (key, got.dtype)
        if not np.all(np.isfinite(got)):
            return False, "%s contains NaN or infinity" % key
        if check.compare == "below":
            if not np.all(got < want):
                return False, "%s is %.4g, must be below %g" % (key, got.max(), want.max())
            notes.append("%s %.4g < %g" % (key, got.max(), want.max()))
            continue
        err = rel_error(got.astype(np.float64), want.astype(np.float64)) if got.size else 0.0
        if err > check.tol and check.atol and np.max(np.abs(got.astype(np.float64) - want)) <= check.atol:
            notes.append("%s: absolute error within %.0e" % (key, check.atol))
            continue
        if err > check.tol:
            return False, "%s: largest relative error %.2e exceeds the tolerance %.0e" % (key, err, check.tol)
        worst = max(worst, err)
    if check.compare == "close":
        notes.insert(0, "largest relative error %.2e (tolerance %.0e)" % (worst, check.tol))
    return True, "; ".join(notes) or "as expected"


def expected_values(check, trusted):
    """The check's expected values: literal, or computed with the trusted implementation."""
    return check.expected(trusted) if callable(check.expected) else check.expected


def judge_outputs(check, outputs, trusted, expected, seed=None):
    """(passed, message) of raw outputs: evaluated with trusted when the check says so, compared.
    seed: the one the outputs were run with, for a seeded check."""
    if check.evaluate:
        outputs = check.evaluate(trusted, outputs, **({"seed": seed} if check.seeded and seed is not None else {}))
    return compare(check, outputs, expected)


def evaluate_check(check, impl, trusted):
    """Run a check on impl, with expected values from trusted: (passed, message, warnings)."""
    impl.warnings = []
    outputs = check.run(impl)
    return judge_outputs(check, outputs, trusted, expected_values(check, trusted)) + (list(impl.warnings),)


def tolerance(unit, about="", absolute=False):
    """The number the public check of unit whose name contains `about` holds your results to: the
    largest relative error it accepts (absolute: the largest absolute error of a gradient that is 0 in
    theory), or for training the loss to end below. The notebooks print their numbers with it."""
    found = [c for c in PUBLIC_CHECKS if c.unit == unit and about in c.name and c.compare != "tokens"]
    if len(found) != 1:
        raise KeyError("%d public checks of %r with a number are named with %r" % (len(found), unit, about))
    c = found[0]
    if c.compare == "below":
        return float(next(iter(c.expected.values())))
    return c.atol if absolute else c.tol


NOT_WRITTEN = "not implemented yet"


def unit_graph():
    """(DEPENDS, OPTIONAL) of the package's units.py, which `make release` writes from the course's
    list of units; ({}, ()) in the course's source/, where it is not written."""
    try:
        from . import units
    except ImportError:
        return {}, ()
    return units.DEPENDS, units.OPTIONAL


def public_results(unit, impl):
    """[(check, passed, message, warnings)] of the unit's public checks on impl."""
    checks = [c for c in PUBLIC_CHECKS if c.unit == unit]
    if not checks:
        raise KeyError("no public checks for unit %r" % unit)
    results = []
    for c in checks:
        try:
            results.append((c,) + evaluate_check(c, impl, impl))
        except NotImplementedError:
            results.append((c, False, NOT_WRITTEN, []))
        except Exception as e:
            results.append((c, False, "".join(traceback.format_exception_only(type(e), e)).strip(), []))
    return results


def failing_dependencies(unit, impl, depends):
    """[(unit, why)] of the units unit depends on (directly or not) that fail their own public checks
    while all the units they depend on pass theirs: the first ones to fix."""
    def closure(name):
        found = []
        for dep in depends.get(name, ()):
            found += [d for d in closure(dep) + [dep] if d not in found]
        return found

    results = {}
    for dep in closure(unit):
        results[dep] = public_results(dep, impl)
    failing = {d for d, rs in results.items() if not all(r[1] for r in rs)}
    return [(d, "is not written yet" if all(r[2] == NOT_WRITTEN for r in results[d]) else "fails its own check")
            for d in closure(unit) if d in failing and not failing & set(closure(d))]


class CheckFailed(AssertionError):
    """A failed check cell: Jupyter shows its one line (the report above says why), no traceback."""

    def _render_traceback_(self):
        return ["%s: %s" % (type(self).__name__, self)]


def report(unit):
    """Run the public checks of a unit on your own `captioning` package and print a report.

    When a check fails and a unit it depends on fails its own checks, that unit is named first.
    Returns (passed, why): why is the one-line failure, "" when all pass or when an optional unit
    not written yet is skipped (passed False).
    """
    import captioning
    impl = load_impl(captioning)
    depends, optional = unit_graph()
    results = public_results(unit, impl)
    if unit in optional and all(r[2] == NOT_WRITTEN for r in results):
        print("SKIP  %s -- not written: skipped (optional)" % unit)
        return False, ""
    failed = [c.title for c, passed, _, _ in results if not passed]
    first = failing_dependencies(unit, impl, depends) if failed else []
    for dep, why in first:
        print("NOTE  %s uses your %s, which %s: fix %s first" % (unit, dep, why, dep))
    for c, passed, message, warnings in results:
        print("%s  %s -- %s" % ("PASS" if passed else "FAIL", c.title, message))
        for w in warnings:
            print("      warning: " + w)
    if failed and not first:  # a known mistake these outputs match (captioning/hints.py)
        from .hints import PREFIX, diagnose
        hint = diagnose(unit, impl, results)
        if hint:
            print("HINT  " + PREFIX + hint + ".")
    if not failed:
        return True, ""
    return False, "failed: " + ", ".join(failed) + "".join("; fix %s first" % dep for dep, _ in first)


def check(unit):
    """A notebook's check cell: report(unit), then a failure stops Run All with one line
    (CheckFailed, an AssertionError). Returns None, so the cell shows nothing more."""
    passed, why = report(unit)
    if why:
        raise CheckFailed(why)


@contextlib.contextmanager
def optional(unit):
    """Run a cell's code for an optional unit: while the unit is not written (NotImplementedError),
    the cell says it is skipped and Run All goes on."""
    try:
        yield
    except NotImplementedError:
        print("%s is not written: skipped (optional)" % unit)
