"""The graded units and their points: the one place units and points are declared.

Adding a unit: one entry here (after the units it depends on), its solution region in source/, its
public check(s) in captioning/checks.py and hidden ones in autograder/hidden.py.
"""
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    name: str        # as shown to students and used as the prefix of every test name
    notebook: str    # the notebook whose autograded test cell grades this unit
    points: float
    function: str    # the student's code this unit grades, 'module:qualname' within the package
    depends: tuple = ()    # units whose functions this unit's checks call (directly)
    partner: str = None    # the backward unit of a forward one and vice versa: they share a cache layout
    training: bool = False  # trains the model: graded on the model's own loss, which is never swapped
    optional: bool = False  # "going further": the notebooks skip it while it is not written

    @property
    def grade_id(self):
        """nbgrader cell id: the name with everything but [A-Za-z0-9_] turned into '_'."""
        return re.sub(r"_+", "_", re.sub(r"\W", "_", self.name)).strip("_")

    @property
    def is_backward(self):
        return self.partner is not None and self.name.endswith("_backward")


RNN_NB, LSTM_NB, TRANSFORMER_NB = "RNN_Captioning.ipynb", "LSTM_Captioning.ipynb", "Transformer_Captioning.ipynb"
LAYERS, MODEL = "rnn_layers:", "classifiers.rnn:CaptioningRNN."
T_LAYERS, T_MODEL = "transformer_layers:", "classifiers.transformer:CaptioningTransformer."
NETVIZ_NB, NETVIZ = "Network_Visualization.ipynb", "net_visualization_pytorch:"


def layer(name, notebook, points, depends=(), partner=None):
    return Unit(name, notebook, points, LAYERS + name, depends, partner)


def t_layer(name, points, depends=(), partner=None):
    return Unit(name, TRANSFORMER_NB, points, T_LAYERS + name, depends, partner)


def model_units(cell, notebook, sequence_layers, step_forward):
    """The loss, sample and training units of one cell type."""
    loss = "CaptioningRNN.loss (%s)" % cell
    return (
        Unit(loss, notebook, 8, MODEL + "loss",
             ("word_embedding_forward", "word_embedding_backward") + sequence_layers),
        Unit("CaptioningRNN.sample (%s)" % cell, notebook, 6, MODEL + "sample",
             ("word_embedding_forward", step_forward)),
        Unit("overfit (%s)" % cell, notebook, 6, MODEL + "loss", (loss,), training=True),
    )


UNITS = (
    layer("rnn_step_forward", RNN_NB, 5, partner="rnn_step_backward"),
    layer("rnn_step_backward", RNN_NB, 5, ("rnn_step_forward",), partner="rnn_step_forward"),
    layer("rnn_forward", RNN_NB, 5, ("rnn_step_forward",), partner="rnn_backward"),
    layer("rnn_backward", RNN_NB, 8, ("rnn_step_backward", "rnn_forward"), partner="rnn_forward"),
    layer("word_embedding_forward", RNN_NB, 5, partner="word_embedding_backward"),
    layer("word_embedding_backward", RNN_NB, 5, ("word_embedding_forward",), partner="word_embedding_forward"),
    *model_units("rnn", RNN_NB, ("rnn_forward", "rnn_backward"), "rnn_step_forward"),
    layer("lstm_step_forward", LSTM_NB, 6, partner="lstm_step_backward"),
    layer("lstm_step_backward", LSTM_NB, 8, ("lstm_step_forward",), partner="lstm_step_forward"),
    layer("lstm_forward", LSTM_NB, 5, ("lstm_step_forward",), partner="lstm_backward"),
    layer("lstm_backward", LSTM_NB, 8, ("lstm_step_backward", "lstm_forward"), partner="lstm_forward"),
    *model_units("lstm", LSTM_NB, ("lstm_forward", "lstm_backward"), "lstm_step_forward"),
    # Going further: beam search, one unit per model family (staff may set its points to 0). The
    # RNN family's is written in the RNN notebook and checked with both cells (hidden: the LSTM).
    Unit("CaptioningRNN.beam_search", RNN_NB, 5, MODEL + "beam_search",
         ("word_embedding_forward", "rnn_step_forward", "lstm_step_forward"), optional=True),
    # The Transformer part: 55 points with its beam search (the RNN and LSTM parts: 105).
    t_layer("positional_encoding", 3),
    t_layer("multihead_attention_forward", 7, partner="multihead_attention_backward"),
    t_layer("multihead_attention_backward", 9, ("multihead_attention_forward",),
            partner="multihead_attention_forward"),
    t_layer("decoder_layer_forward", 6, ("multihead_attention_forward",), partner="decoder_layer_backward"),
    t_layer("decoder_layer_backward", 9, ("multihead_attention_backward", "decoder_layer_forward"),
            partner="decoder_layer_forward"),
    Unit("CaptioningTransformer.loss", TRANSFORMER_NB, 6, T_MODEL + "loss",
         ("word_embedding_forward", "word_embedding_backward", "positional_encoding", "decoder_layer_forward",
          "decoder_layer_backward")),
    Unit("CaptioningTransformer.sample", TRANSFORMER_NB, 5, T_MODEL + "sample",
         ("word_embedding_forward", "positional_encoding", "decoder_layer_forward")),
    Unit("overfit (transformer)", TRANSFORMER_NB, 5, T_MODEL + "loss", ("CaptioningTransformer.loss",),
         training=True),
    Unit("CaptioningTransformer.beam_search", TRANSFORMER_NB, 5, T_MODEL + "beam_search",
         ("word_embedding_forward", "positional_encoding", "decoder_layer_forward"), optional=True),
    # The network visualization part (PyTorch): 15 points, each function on its own.
    Unit("compute_saliency_maps", NETVIZ_NB, 5, NETVIZ + "compute_saliency_maps"),
    Unit("make_fooling_image", NETVIZ_NB, 5, NETVIZ + "make_fooling_image"),
    Unit("class_visualization_update_step", NETVIZ_NB, 5, NETVIZ + "class_visualization_update_step"),
)


def check_dependency_order(units):
    """Grading resolves units in this order, so each must come after the units it depends on."""
    for i, unit in enumerate(units):
        missing = set(unit.depends) - {u.name for u in units[:i]}
        if missing:
            raise ValueError("units.py: %s is listed before %s, which it depends on"
                             % (unit.name, ", ".join(sorted(missing))))


check_dependency_order(UNITS)
BY_NAME = {u.name: u for u in UNITS}
BY_GRADE_ID = {u.grade_id: u for u in UNITS}
TOTAL = sum(u.points for u in UNITS)
# The written questions, graded by hand (not by the kit): the points of the notebooks' answer cells
# by grade_id, as the source notebooks give them (tests/test_student_release.py checks they agree).
WRITTEN = {"char_vs_word": 2, "sigmoid_gates": 2, "causal_mask_question": 2, "cross_attention_question": 2,
           "saliency_ascent_question": 2}


def closure(name):
    """The units name depends on, directly or not (name excluded), in UNITS order."""
    seen, todo = set(), list(BY_NAME[name].depends)
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo.extend(BY_NAME[dep].depends)
    return [u.name for u in UNITS if u.name in seen]
