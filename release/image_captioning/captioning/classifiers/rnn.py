"""CaptioningRNN: image features in, word scores out, through a vanilla RNN or an LSTM."""
import numpy as np

from ..beam_search import extend_beams, start_beams
from ..layers import affine_backward, affine_forward
from ..rnn_layers import (
    lstm_backward,
    lstm_forward,
    lstm_step_forward,
    rnn_backward,
    rnn_forward,
    rnn_step_forward,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)


class CaptioningRNN:
    """Produces captions from image features with a recurrent network (vanilla RNN or LSTM).

    The network reads image feature vectors of size D, has hidden size H, word vectors of size W
    and a vocabulary of V words; it works on minibatches of N captions of length T. It uses no
    regularization.
    """

    def __init__(self, word_to_idx, input_dim=512, wordvec_dim=128, hidden_dim=128,
                 cell_type="rnn", dtype=np.float32):
        """Create a captioning model with randomly initialized weights.

        Inputs:
        - word_to_idx: Dictionary mapping each of the V vocabulary words (strings) to an integer
          index in [0, V). It must hold "<NULL>"; "<START>" and "<END>" are used when present.
        - input_dim: Size D of the image feature vectors.
        - wordvec_dim: Size W of the word vectors.
        - hidden_dim: Size H of the hidden state of the RNN or LSTM.
        - cell_type: Which recurrent network to use, 'rnn' or 'lstm'; anything else is a ValueError.
        - dtype: numpy dtype of the parameters, e.g. np.float32 (fast) or np.float64 (for
          numerical gradient checks).
        """
        if cell_type not in {"rnn", "lstm"}:
            raise ValueError('Invalid cell_type "%s"' % cell_type)

        self.cell_type = cell_type
        self.dtype = dtype
        self.word_to_idx = word_to_idx
        self.idx_to_word = {i: w for w, i in word_to_idx.items()}
        self.params = {}

        vocab_size = len(word_to_idx)
        self._null = word_to_idx["<NULL>"]
        self._start = word_to_idx.get("<START>", None)
        self._end = word_to_idx.get("<END>", None)

        self.params["W_embed"] = np.random.randn(vocab_size, wordvec_dim) / 100
        self.params["W_proj"] = np.random.randn(input_dim, hidden_dim) / np.sqrt(input_dim)
        self.params["b_proj"] = np.zeros(hidden_dim)
        dim_mul = {"lstm": 4, "rnn": 1}[cell_type]
        self.params["Wx"] = np.random.randn(wordvec_dim, dim_mul * hidden_dim) / np.sqrt(wordvec_dim)
        self.params["Wh"] = np.random.randn(hidden_dim, dim_mul * hidden_dim) / np.sqrt(hidden_dim)
        self.params["b"] = np.zeros(dim_mul * hidden_dim)
        self.params["W_vocab"] = np.random.randn(hidden_dim, vocab_size) / np.sqrt(hidden_dim)
        self.params["b_vocab"] = np.zeros(vocab_size)

        for k, v in self.params.items():
            self.params[k] = v.astype(self.dtype)

    def loss(self, features, captions):
        """Training loss and gradients for a minibatch of images and their captions.

        The model reads captions[:, :-1] and must predict captions[:, 1:], one word ahead; the
        timesteps whose target word is <NULL> (padding) do not count.

        Inputs:
        - features: Image features, of shape (N, D).
        - captions: Ground-truth captions as integer word indices, of shape (N, T + 1); each
          starts with <START> and is padded with <NULL>.

        Returns a tuple of:
        - loss: The loss, a scalar.
        - grads: Dictionary with the same keys as self.params, mapping each parameter name to the
          gradient of the loss with respect to that parameter (same shape as the parameter).
        """
        captions_in = captions[:, :-1]
        captions_out = captions[:, 1:]
        mask = captions_out != self._null

        W_proj, b_proj = self.params["W_proj"], self.params["b_proj"]
        W_embed = self.params["W_embed"]
        Wx, Wh, b = self.params["Wx"], self.params["Wh"], self.params["b"]
        W_vocab, b_vocab = self.params["W_vocab"], self.params["b_vocab"]

        loss, grads = 0.0, {}
        # TODO: forward pass (initial hidden state from an affine projection of the features, word
        # embedding, rnn_forward or lstm_forward, temporal affine, temporal softmax loss), then the
        # backward pass through the same layers into grads, keyed like self.params.
        # YOUR CODE HERE
        raise NotImplementedError()
        return loss, grads

    def sample(self, features, max_length=30, beam_size=1):
        """Caption images by greedy decoding (beam_size 1, the default) or by beam search.

        Start from <START> with the projected image features as the hidden state (and a zero cell
        state for the LSTM). At every step embed the previous word, take one RNN/LSTM step, score
        the vocabulary and feed the highest-scoring word back in as the next input.

        Inputs:
        - features: Image features, of shape (N, D).
        - max_length: Number T of words to sample for each image.
        - beam_size: 1 for greedy decoding; more: beam search with that many hypotheses.

        Returns:
        - captions: Integer word indices, of shape (N, max_length). captions[:, 0] is the first
          sampled word, not <START>; what comes after an <END> does not matter.
        """
        if beam_size > 1:
            return self.beam_search(features, max_length, beam_size)
        N = features.shape[0]
        captions = self._null * np.ones((N, max_length), dtype=np.int32)

        W_proj, b_proj = self.params["W_proj"], self.params["b_proj"]
        W_embed = self.params["W_embed"]
        Wx, Wh, b = self.params["Wx"], self.params["Wh"], self.params["b"]
        W_vocab, b_vocab = self.params["W_vocab"], self.params["b_vocab"]

        # TODO: the sampling loop described above; write each chosen word into captions[:, t].
        # YOUR CODE HERE
        raise NotImplementedError()
        return captions

    def beam_search(self, features, max_length=30, beam_size=3):
        """Caption images by beam search.

        Every image keeps beam_size hypotheses, starting from the one hypothesis <START> with
        score 0 and the state sample starts from. At every step run one RNN/LSTM step for each
        hypothesis, turn its vocabulary scores into log-probabilities (a log-softmax), and let
        extend_beams (given) pick the beam_size best extensions; they become the new hypotheses,
        each with the state of the hypothesis it extends. A hypothesis that produces <END> is
        finished. Stop when every hypothesis is finished or after max_length steps. With
        beam_size 1 this is greedy decoding that stops at <END>.

        Inputs:
        - features: Image features, of shape (N, D).
        - max_length: Number T of steps.
        - beam_size: Number of hypotheses kept for each image.

        Returns:
        - captions: Integer word indices, of shape (N, max_length): the best hypothesis of each
          image (highest sum of log-probabilities), without <START> and padded with <NULL>.
        """
        N = features.shape[0]
        scores, finished = start_beams(N, beam_size)  # the hypotheses' scores, which have ended
        captions = self._null * np.ones((N, beam_size, max_length), dtype=np.int32)

        W_proj, b_proj = self.params["W_proj"], self.params["b_proj"]
        W_embed = self.params["W_embed"]
        Wx, Wh, b = self.params["Wx"], self.params["Wh"], self.params["b"]
        W_vocab, b_vocab = self.params["W_vocab"], self.params["b_vocab"]

        # TODO: the search described above. Keep the hypotheses' states in arrays of N * beam_size
        # rows and each kept hypothesis's words in captions[n, k, :] (hypothesis k of image n, best
        # first as extend_beams returns them), so that captions[:, 0] is the answer.
        # YOUR CODE HERE
        raise NotImplementedError()
        return captions[:, 0]
