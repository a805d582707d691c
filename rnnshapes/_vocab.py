"""The shape vocabulary: one set of dimension names, used by annotations, docstrings, errors and the docs.

The names follow ``torch.nn.RNN``'s documentation, spelled as words so they read well inside jaxtyping
annotations such as ``Float[Tensor, "layers*dirs batch hidden"]``:

===========  ==============  ================================================================================
name         torch           meaning
===========  ==============  ================================================================================
batch        N               batch size: how many sequences are processed together
time         L               sequence length (time steps); the longest one in a padded batch
input        H_in            features per time step fed to the recurrent layer (input_size)
hidden       H_out           features of the hidden state and of each output step (hidden_size, or proj_size)
cell         H_cell          features of an LSTM's cell state c (hidden_size)
layers       num_layers      stacked recurrent layers
dirs         D               directions: 2 if bidirectional else 1
layers*dirs  num_layers * D  leading size of every hidden state
classes      C               output classes (one logit each)
vocab        V               symbols in a vocabulary (rows of an embedding)
embed        E               size of one embedding vector
total        sum(lengths)    rows of a PackedSequence's data
source       S               source length: the encoder's time steps (seq2seq), the longest in a batch
target       T               target length: the decoder's time steps (seq2seq), the longest in a batch
===========  ==============  ================================================================================

``*seq`` stands for the two leading axes of a sequence tensor: ``batch time`` when the module is
``batch_first`` and ``time batch`` otherwise. The hidden state is **always** ``layers*dirs batch hidden``,
whatever ``batch_first`` says.
"""

from typing import NamedTuple


class Dim(NamedTuple):
    name: str
    torch_symbol: str
    meaning: str


DIMENSIONS: tuple[Dim, ...] = (
    Dim("batch", "N", "batch size: how many sequences are processed together"),
    Dim("time", "L", "sequence length (time steps); the longest one in a padded batch"),
    Dim("input", "H_in", "features per time step fed to the recurrent layer (input_size)"),
    Dim(
        "hidden", "H_out", "features of the hidden state and of each output step (hidden_size, or proj_size)"
    ),
    Dim("cell", "H_cell", "features of an LSTM's cell state c (hidden_size)"),
    Dim("layers", "num_layers", "stacked recurrent layers"),
    Dim("dirs", "D", "directions: 2 if bidirectional else 1"),
    Dim("layers*dirs", "num_layers * D", "leading size of every hidden state"),
    Dim("classes", "C", "output classes (one logit each)"),
    Dim("vocab", "V", "symbols in a vocabulary (rows of an embedding)"),
    Dim("embed", "E", "size of one embedding vector"),
    Dim("total", "sum(lengths)", "rows of a PackedSequence's data"),
    Dim("source", "S", "source length: the encoder's time steps (seq2seq), the longest in a batch"),
    Dim("target", "T", "target length: the decoder's time steps (seq2seq), the longest in a batch"),
)

SEQ = "*seq"
"""The batch_first-aware pair of axes: ``batch time`` if the module is batch_first, else ``time batch``."""


def seq_axes(batch_first: bool) -> tuple[str, str]:
    """The names of the two leading axes of a sequence tensor for a module's ``batch_first``."""
    return ("batch", "time") if batch_first else ("time", "batch")


def markdown_table() -> str:
    """The vocabulary as a Markdown table (rendered by the docs)."""
    rows = ["| name | torch | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{d.name}` | {d.torch_symbol} | {d.meaning} |" for d in DIMENSIONS]
    return "\n".join(rows)
