"""The graded units as check() and submit need them, written by the course's `make release`
(do not edit).

DEPENDS: the units whose functions each unit's checks call; OPTIONAL: the units you may skip;
EDITED: the files you edit, which the autograder reads; NOTEBOOKS: the notebooks, in order.
"""
DEPENDS = {
    'rnn_step_backward': ('rnn_step_forward',),
    'rnn_forward': ('rnn_step_forward',),
    'rnn_backward': ('rnn_step_backward', 'rnn_forward'),
    'word_embedding_backward': ('word_embedding_forward',),
    'CaptioningRNN.loss (rnn)': ('word_embedding_forward', 'word_embedding_backward', 'rnn_forward', 'rnn_backward'),
    'CaptioningRNN.sample (rnn)': ('word_embedding_forward', 'rnn_step_forward'),
    'overfit (rnn)': ('CaptioningRNN.loss (rnn)',),
    'lstm_step_backward': ('lstm_step_forward',),
    'lstm_forward': ('lstm_step_forward',),
    'lstm_backward': ('lstm_step_backward', 'lstm_forward'),
    'CaptioningRNN.loss (lstm)': ('word_embedding_forward', 'word_embedding_backward', 'lstm_forward', 'lstm_backward'),
    'CaptioningRNN.sample (lstm)': ('word_embedding_forward', 'lstm_step_forward'),
    'overfit (lstm)': ('CaptioningRNN.loss (lstm)',),
    'CaptioningRNN.beam_search': ('word_embedding_forward', 'rnn_step_forward', 'lstm_step_forward'),
    'multihead_attention_backward': ('multihead_attention_forward',),
    'decoder_layer_forward': ('multihead_attention_forward',),
    'decoder_layer_backward': ('multihead_attention_backward', 'decoder_layer_forward'),
    'CaptioningTransformer.loss': ('word_embedding_forward', 'word_embedding_backward', 'positional_encoding', 'decoder_layer_forward', 'decoder_layer_backward'),
    'CaptioningTransformer.sample': ('word_embedding_forward', 'positional_encoding', 'decoder_layer_forward'),
    'overfit (transformer)': ('CaptioningTransformer.loss',),
    'CaptioningTransformer.beam_search': ('word_embedding_forward', 'positional_encoding', 'decoder_layer_forward'),
}
OPTIONAL = ('CaptioningRNN.beam_search', 'CaptioningTransformer.beam_search')
EDITED = ('captioning/classifiers/rnn.py', 'captioning/classifiers/transformer.py', 'captioning/net_visualization_pytorch.py', 'captioning/rnn_layers.py', 'captioning/transformer_layers.py')
NOTEBOOKS = ('RNN_Captioning.ipynb', 'LSTM_Captioning.ipynb', 'Transformer_Captioning.ipynb', 'Network_Visualization.ipynb')
