"""CaptioningTransformer: image features in, word scores out, through a Transformer decoder."""
import numpy as np

from ..beam_search import extend_beams, start_beams
from ..layers import affine_backward, affine_forward
from ..rnn_layers import (
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)
from ..transformer_layers import (
    ATTENTION_KEYS,
    decoder_layer_backward,
    decoder_layer_forward,
    positional_encoding,
)


class CaptioningTransformer:
    """Produces captions from image features with a stack of Transformer decoder layers.

    The image feature vector (size D) is projected to one "memory" token of size E that every
    layer's cross-attention reads. The caption's words are embedded (size E), positional encodings
    are added, and num_layers decoder layers with causal self-attention turn them into vectors from
    which the next word is scored. No dropout, no regularization.
    """

    def __init__(self, word_to_idx, input_dim=512, wordvec_dim=128, num_heads=4, num_layers=2,
                 ffn_dim=None, max_length=50, dtype=np.float32):
        """Create a captioning Transformer with randomly initialized weights.

        Inputs:
        - word_to_idx: Dictionary mapping each of the V vocabulary words (strings) to an integer
          index in [0, V). It must hold "<NULL>"; "<START>" and "<END>" are used when present.
        - input_dim: Size D of the image feature vectors.
        - wordvec_dim: Size E of the word vectors and of every layer's vectors.
        - num_heads: Number of attention heads (E must be a multiple of it).
        - num_layers: Number of decoder layers.
        - ffn_dim: Hidden size F of the feed-forward sublayers (default 4 E).
        - max_length: Longest caption the model reads or samples.
        - dtype: numpy dtype of the parameters, e.g. np.float32 (fast) or np.float64 (for
          numerical gradient checks).
        """
        if wordvec_dim % num_heads:
            raise ValueError("wordvec_dim %d is not a multiple of num_heads %d" % (wordvec_dim, num_heads))
        self.dtype = dtype
        self.word_to_idx = word_to_idx
        self.idx_to_word = {i: w for w, i in word_to_idx.items()}
        self.num_heads, self.num_layers, self.max_length = num_heads, num_layers, max_length
        self.embed_dim = E = wordvec_dim
        F = ffn_dim or 4 * wordvec_dim
        self.params = {}

        vocab_size = len(word_to_idx)
        self._null = word_to_idx["<NULL>"]
        self._start = word_to_idx.get("<START>", None)
        self._end = word_to_idx.get("<END>", None)

        self.params["W_proj"] = np.random.randn(input_dim, E) / np.sqrt(input_dim)
        self.params["b_proj"] = np.zeros(E)
        self.params["W_embed"] = np.random.randn(vocab_size, E) / np.sqrt(E)
        for layer in range(num_layers):
            p = "layer%d_" % layer
            for kind in ("self_", "cross_"):
                for name in ATTENTION_KEYS:
                    if name.startswith("W"):
                        self.params[p + kind + name] = np.random.randn(E, E) / np.sqrt(E)
                    else:
                        self.params[p + kind + name] = np.zeros(E)
            for ln in ("ln1", "ln2", "ln3"):
                self.params[p + ln + "_gamma"] = np.ones(E)
                self.params[p + ln + "_beta"] = np.zeros(E)
            self.params[p + "W1"] = np.random.randn(E, F) / np.sqrt(E)
            self.params[p + "b1"] = np.zeros(F)
            self.params[p + "W2"] = np.random.randn(F, E) / np.sqrt(F)
            self.params[p + "b2"] = np.zeros(E)
        self.params["W_vocab"] = np.random.randn(E, vocab_size) / np.sqrt(E)
        self.params["b_vocab"] = np.zeros(vocab_size)

        for k, v in self.params.items():
            self.params[k] = v.astype(self.dtype)

    def layer_params(self, layer):
        """The parameters of decoder layer `layer`, keyed as decoder_layer_forward expects (given)."""
        prefix = "layer%d_" % layer
        return {k[len(prefix):]: v for k, v in self.params.items() if k.startswith(prefix)}

    def loss(self, features, captions):
        """Training loss and gradients for a minibatch of images and their captions.

        The model reads captions[:, :-1] and must predict captions[:, 1:], one word ahead; the
        timesteps whose target word is <NULL> (padding) do not count.

        Inputs:
        - features: Image features, of shape (N, D).
        - captions: Ground-truth captions as integer word indices, of shape (N, T + 1).

        Returns a tuple of:
        - loss: The loss, a scalar.
        - grads: Dictionary with the same keys as self.params, mapping each parameter name to the
          gradient of the loss with respect to that parameter (same shape as the parameter).
        """
        captions_in = captions[:, :-1]
        captions_out = captions[:, 1:]
        mask = captions_out != self._null
        N, T = captions_in.shape

        W_proj, b_proj = self.params["W_proj"], self.params["b_proj"]
        W_embed = self.params["W_embed"]
        W_vocab, b_vocab = self.params["W_vocab"], self.params["b_vocab"]

        loss, grads = 0.0, {}
        # TODO: forward pass: memory = the projected features as one token of shape (N, 1, E);
        # x = embedded captions_in + positional_encoding(T, E); a causal mask (T, T) (position t
        # may attend to positions <= t); the decoder layers in order (self.layer_params(l)); the
        # temporal affine scores and the temporal softmax loss. Then the backward pass through the
        # same layers into grads, keyed like self.params ("layer%d_" + the layer's keys).
        projected, proj_cache = affine_forward(features, W_proj, b_proj)
        memory = projected[:, None, :]
        x, embed_cache = word_embedding_forward(captions_in, W_embed)
        x = x + positional_encoding(T, self.embed_dim).astype(x.dtype)
        causal = np.tril(np.ones((T, T), dtype=bool))
        layer_caches = []
        for layer in range(self.num_layers):
            x, cache = decoder_layer_forward(x, memory, self.layer_params(layer), self.num_heads, causal)
            layer_caches.append(cache)
        scores, vocab_cache = temporal_affine_forward(x, W_vocab, b_vocab)
        loss, dscores = temporal_softmax_loss(scores, captions_out, mask)

        dx, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, vocab_cache)
        dmemory = np.zeros_like(memory)
        for layer in reversed(range(self.num_layers)):
            dx, dmemory_layer, layer_grads = decoder_layer_backward(dx, layer_caches[layer])
            dmemory = dmemory + dmemory_layer
            grads.update({"layer%d_%s" % (layer, k): g for k, g in layer_grads.items()})
        grads["W_embed"] = word_embedding_backward(dx, embed_cache)
        _, grads["W_proj"], grads["b_proj"] = affine_backward(dmemory[:, 0, :], proj_cache)
        return loss, grads

    def sample(self, features, max_length=30, beam_size=1):
        """Caption images by greedy decoding (beam_size 1, the default) or by beam search.

        Start from the one-word prefix [<START>]. At every step run the decoder on the whole prefix
        (positional encodings and the causal mask as in loss), score the vocabulary at the last
        position, and append the highest-scoring word to the prefix. (Keeping the keys and values
        of earlier positions is allowed if the captions are the same.)

        Inputs:
        - features: Image features, of shape (N, D).
        - max_length: Number of words to sample for each image.
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
        W_vocab, b_vocab = self.params["W_vocab"], self.params["b_vocab"]

        # TODO: the sampling loop described above; write each chosen word into captions[:, t].
        projected, _ = affine_forward(features, W_proj, b_proj)
        memory = projected[:, None, :]
        pe = positional_encoding(max_length, self.embed_dim)
        prefix = np.full((N, 1), self._start)
        for t in range(max_length):
            x, _ = word_embedding_forward(prefix, W_embed)
            x = x + pe[:t + 1].astype(x.dtype)
            causal = np.tril(np.ones((t + 1, t + 1), dtype=bool))
            for layer in range(self.num_layers):
                x, _ = decoder_layer_forward(x, memory, self.layer_params(layer), self.num_heads, causal)
            words = np.argmax(x[:, -1].dot(W_vocab) + b_vocab, axis=1)
            captions[:, t] = words
            prefix = np.concatenate([prefix, words[:, None]], axis=1)
        return captions

    def beam_search(self, features, max_length=30, beam_size=3):
        """Caption images by beam search.

        Every image keeps beam_size hypotheses (prefixes), starting from the one prefix [<START>]
        with score 0. At every step run the decoder on each prefix as sample does, turn the
        vocabulary scores at its last position into log-probabilities (a log-softmax), and let
        extend_beams (given) pick the beam_size best extensions: the new prefixes. A hypothesis
        that produces <END> is finished. Stop when every hypothesis is finished or after
        max_length steps. With beam_size 1 this is greedy decoding that stops at <END>.

        Inputs:
        - features: Image features, of shape (N, D).
        - max_length: Number of steps.
        - beam_size: Number of hypotheses kept for each image.

        Returns captions as CaptioningRNN.beam_search does: integer word indices (N, max_length),
        each image's best hypothesis without <START>, padded with <NULL> after its <END>.
        """
        N = features.shape[0]
        scores, finished = start_beams(N, beam_size)  # the hypotheses' scores, which have ended

        W_proj, b_proj = self.params["W_proj"], self.params["b_proj"]
        W_embed = self.params["W_embed"]
        W_vocab, b_vocab = self.params["W_vocab"], self.params["b_vocab"]

        # TODO: the search described above, on N * beam_size prefixes at once; return each
        # image's best hypothesis (its prefix without <START>, <NULL> after <END>, max_length words).
        projected, _ = affine_forward(features, W_proj, b_proj)
        memory = np.repeat(projected[:, None, :], beam_size, axis=0)  # row n * beam_size + k
        pe = positional_encoding(max_length, self.embed_dim)
        prefixes = np.full((N, beam_size, 1), self._start)
        images = np.arange(N)[:, None]
        for t in range(max_length):
            x, _ = word_embedding_forward(prefixes.reshape(N * beam_size, t + 1), W_embed)
            x = x + pe[:t + 1].astype(x.dtype)
            causal = np.tril(np.ones((t + 1, t + 1), dtype=bool))
            for layer in range(self.num_layers):
                x, _ = decoder_layer_forward(x, memory, self.layer_params(layer), self.num_heads, causal)
            last = x[:, -1].dot(W_vocab) + b_vocab
            log_probs = last - last.max(axis=1, keepdims=True)
            log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
            kept, words, scores = extend_beams(scores, finished, log_probs.reshape(N, beam_size, -1),
                                               beam_size, self._null)
            prefixes = np.concatenate([prefixes[images, kept], words[:, :, None]], axis=2)
            finished = finished[images, kept] | (words == self._end)
            if finished.all():
                break
        captions = self._null * np.ones((N, max_length), dtype=np.int32)
        captions[:, :prefixes.shape[2] - 1] = prefixes[:, 0, 1:]
        return captions
