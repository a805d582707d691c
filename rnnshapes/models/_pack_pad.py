"""Lesson 13_4: pack a padded batch, run an LSTM over it, and pad the result again."""

from typing import Any

from jaxtyping import Float, Int
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_packed_sequence

from rnnshapes.core._checks import LSTMState, shapecheck
from rnnshapes.core._pack import pack


class PackedEncoder(nn.Module):
    r"""Lesson 13_4: an ``nn.LSTM`` encoder over padded sequences of different lengths, packed on the way in.

    What the lesson teaches: a padded batch holds sequences of different lengths, filled up to the longest.
    Run as is, the LSTM would read the padding too: its final state would come after the padding, and a
    backward direction would start in it. ``pack_padded_sequence`` removes the padding (the packed data has
    one row per real time step, ``total = sum(lengths)`` rows), the LSTM runs over exactly the real steps, and
    ``pad_packed_sequence`` turns the packed output back into a padded tensor, with zeros past each length.
    The result for each sequence equals running that sequence alone.

    Args:
        input: H_in, features per time step. Default: 3
        hidden: H_out, features of the hidden state (and H_cell of the cell state). Default: 5
        layers: number of stacked LSTM layers. Default: 1
        bidirectional: if ``True``, read each sequence both ways (D = 2). Default: ``False``
        batch_first: if ``True``, sequences are ``(N, L, ...)``, else ``(L, N, ...)``. Default: ``True``

    Inputs: x, lengths
        * **x**: padded sequences ``(N, L, H_in)`` if batch_first else ``(L, N, H_in)``; steps past a
          sequence's length are ignored, whatever they hold.
        * **lengths**: integer tensor ``(N)``: each sequence's length, in ``1..L``, in any order (any device).

    Outputs: output, (h_n, c_n)
        * **output**: ``(N, L, D * H_out)`` if batch_first else ``(L, N, D * H_out)``: the last layer's output
          at every step (forward and backward directions concatenated), zeros past each length. L is the
          input's L, even when the longest length is shorter.
        * **h_n**: ``(D * num_layers, N, H_out)``: each layer's and direction's final hidden state, taken at
          each sequence's own last step (forward) or first step (backward).
        * **c_n**: ``(D * num_layers, N, H_cell)``: the final cell states, likewise.

    where:
        N = batch size
        L = padded sequence length
        H_in = input size
        H_out = H_cell = hidden size
        D = 2 if bidirectional else 1
        num_layers = layers

    What the course code got wrong (the course script is 13_3_pack_pad.py; its one small batch hides two of
    these traps, which bite as soon as the code is reused):
        * It sorts the batch by length by hand before packing and never undoes the permutation, so the
          output rows and ``ht`` come back in sorted order, not in the order of the input. Here
          ``enforce_sorted=False`` lets torch sort and unsort: everything comes back in the input's order.
        * It unpads without ``total_length``, so the output is only as long as the longest length; that
          matches its input only because it pads to exactly the longest sequence. Here the output always
          keeps the input's L.
        * It prints ``ht[-1]`` as "the last output": that is the last layer's *last direction*, which for a
          bidirectional LSTM is the backward state (taken at the first step). Here both directions are in
          the output's last axis (``D * H_out``) and in ``h_n``.
    """

    def __init__(
        self,
        *,
        input: int = 3,
        hidden: int = 5,
        layers: int = 1,
        bidirectional: bool = False,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(
            input=input, hidden=hidden, layers=layers, bidirectional=bidirectional, batch_first=batch_first
        )
        self.batch_first = batch_first
        self.lstm = nn.LSTM(
            input_size=input,
            hidden_size=hidden,
            num_layers=layers,
            bidirectional=bidirectional,
            batch_first=batch_first,
        )

    @shapecheck
    def forward(
        self, x: Float[Tensor, "*seq input"], lengths: Int[Tensor, " batch"]
    ) -> tuple[Float[Tensor, "*seq dirs*hidden"], LSTMState]:
        time = x.shape[1 if self.batch_first else 0]
        # rnnshapes.pack: pack_padded_sequence(enforce_sorted=False) with the lengths checked against time
        packed = pack(x, lengths.cpu(), batch_first=self.batch_first)  # PackedSequence, data: (total, input)
        # packed_output.data: (total, dirs*hidden); h_n, c_n: (layers*dirs, batch, hidden) in input order
        packed_output, (h_n, c_n) = self.lstm(packed)
        # PackedSequence -> (*seq, dirs*hidden), zeros past each length, time as long as the input's
        output, _ = pad_packed_sequence(packed_output, batch_first=self.batch_first, total_length=time)
        return output, (h_n, c_n)
