"""The graded units and their points: the one place points are declared."""
from dataclasses import dataclass
import re


@dataclass(frozen=True)
class Unit:
    name: str       # as shown to students and used as the prefix of every test name
    notebook: str   # the notebook whose autograded test cell grades this unit
    points: float
    depends: tuple = ()  # units this one usually calls; swapped for the reference on failure

    @property
    def grade_id(self):
        """nbgrader cell id: the name with everything but [A-Za-z0-9_] turned into '_'."""
        return re.sub(r"_+", "_", re.sub(r"\W", "_", self.name)).strip("_")


RNN_NB, LSTM_NB = "RNN_Captioning.ipynb", "LSTM_Captioning.ipynb"
_MODEL_LAYERS = ("word_embedding_forward", "word_embedding_backward")
_RNN = ("rnn_forward", "rnn_backward")
_LSTM = ("lstm_forward", "lstm_backward")

UNITS = (
    Unit("rnn_step_forward", RNN_NB, 5),
    Unit("rnn_step_backward", RNN_NB, 5, ("rnn_step_forward",)),
    Unit("rnn_forward", RNN_NB, 5, ("rnn_step_forward",)),
    Unit("rnn_backward", RNN_NB, 8, ("rnn_step_backward", "rnn_forward", "rnn_step_forward")),
    Unit("word_embedding_forward", RNN_NB, 5),
    Unit("word_embedding_backward", RNN_NB, 5, ("word_embedding_forward",)),
    Unit("CaptioningRNN.loss (rnn)", RNN_NB, 8, _MODEL_LAYERS + _RNN + ("rnn_step_forward", "rnn_step_backward")),
    Unit("CaptioningRNN.sample (rnn)", RNN_NB, 6, ("word_embedding_forward", "rnn_step_forward")),
    Unit("overfit (rnn)", RNN_NB, 6, ("CaptioningRNN.loss (rnn)",)),
    Unit("lstm_step_forward", LSTM_NB, 6),
    Unit("lstm_step_backward", LSTM_NB, 8, ("lstm_step_forward",)),
    Unit("lstm_forward", LSTM_NB, 5, ("lstm_step_forward",)),
    Unit("lstm_backward", LSTM_NB, 8, ("lstm_step_backward", "lstm_forward", "lstm_step_forward")),
    Unit("CaptioningRNN.loss (lstm)", LSTM_NB, 8, _MODEL_LAYERS + _LSTM + ("lstm_step_forward", "lstm_step_backward")),
    Unit("CaptioningRNN.sample (lstm)", LSTM_NB, 6, ("word_embedding_forward", "lstm_step_forward")),
    Unit("overfit (lstm)", LSTM_NB, 6, ("CaptioningRNN.loss (lstm)",)),
)
BY_NAME = {u.name: u for u in UNITS}
BY_GRADE_ID = {u.grade_id: u for u in UNITS}
TOTAL = sum(u.points for u in UNITS)
