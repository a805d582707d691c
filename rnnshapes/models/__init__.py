"""The lesson models of PyTorchZeroToAll lectures 12-14, with checked shapes.

Each model is a plain ``nn.Module`` whose ``forward`` is checked by :func:`rnnshapes.shapecheck` against the
shape vocabulary (``batch``, ``time``, ``input``, ``hidden``, ...), takes only keyword arguments of plain
values, and keeps them in ``config`` so that ``type(model)(**model.config)`` builds it again.

======================  ===========  ==================================================================
name                    lesson       what it shows
======================  ===========  ==================================================================
``cell_tour``           12_1         the shapes that go into and come out of RNN, GRU and LSTM
``HelloRNN``            12_2, 12_3   one-hot "hihell" -> "ihello", one step at a time or all at once
``HelloEmbedding``      12_4         the same with an embedding
``NamesClassifier``     13_1, 13_2   a name's country from a packed, possibly bidirectional RNN/GRU/LSTM
``CharRNN``             13_3         a character-level language model that generates text
``PackedEncoder``       13_4         pack_padded_sequence / pad_packed_sequence around an LSTM
``Seq2Seq``             14_1         an encoder GRU and a decoder GRU: restore case and spaces of a line
``Seq2SeqAttention``    14_2         the same with attention over the encoder's outputs, masked on padding
======================  ===========  ==================================================================
"""

from ._cells import CellShapes as CellShapes
from ._cells import cell_tour as cell_tour
from ._char_rnn import ASCII as ASCII
from ._char_rnn import CharRNN as CharRNN
from ._hello import HelloEmbedding as HelloEmbedding
from ._hello import HelloRNN as HelloRNN
from ._names import NamesClassifier as NamesClassifier
from ._pack_pad import PackedEncoder as PackedEncoder
from ._seq2seq import Seq2Seq as Seq2Seq
from ._seq2seq import Seq2SeqAttention as Seq2SeqAttention

__all__ = [
    "ASCII",
    "CellShapes",
    "CharRNN",
    "HelloEmbedding",
    "HelloRNN",
    "NamesClassifier",
    "PackedEncoder",
    "Seq2Seq",
    "Seq2SeqAttention",
    "cell_tour",
]
