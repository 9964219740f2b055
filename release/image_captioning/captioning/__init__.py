"""Image captioning with RNNs and LSTMs, in numpy."""
