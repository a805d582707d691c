"""Small recurrent models for the tests of rnnshapes.testing: correct ones and ones with planted bugs."""

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

H_IN, HIDDEN, CLASSES, VOCAB = 3, 5, 4, 7


class Tagger(nn.Module):
    """Correct: batch-first features (batch time input) -> per-step logits (batch time classes), plus h_n."""

    def __init__(self, bidirectional: bool = False) -> None:
        super().__init__()
        self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(HIDDEN * (2 if bidirectional else 1), CLASSES)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out, h_n = self.rnn(x)
        return self.head(out), h_n


class TimeFirstTagger(nn.Module):
    """Correct: time-first features (time batch input) -> (time batch classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(H_IN, HIDDEN)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(x)[0])


class ViewLeakTagger(nn.Module):
    """BUG: runs a time-first GRU and turns its (time batch hidden) output into (batch time hidden) with
    .view instead of .transpose(0, 1): every example's output mixes in other examples."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(H_IN, HIDDEN)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        batch, time, _ = x.shape
        out, _ = self.rnn(x.transpose(0, 1))
        return self.head(out.reshape(batch, time, -1))  # should be out.transpose(0, 1)


class CumsumOverBatch(nn.Module):
    """BUG: a running sum meant for the time axis of a time-first tensor, applied to a batch-first one: it
    runs over the batch. Example 0 is clean, every later one depends on the examples before it."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return out.cumsum(dim=0)


class EmbedTagger(nn.Module):
    """Token indices (batch time) -> per-step logits; ``leak`` plants the .view bug."""

    def __init__(self, leak: bool = False, bidirectional: bool = False) -> None:
        super().__init__()
        self.leak = leak
        self.embed = nn.Embedding(VOCAB, H_IN)
        self.rnn = nn.GRU(H_IN, HIDDEN, bidirectional=bidirectional)
        self.head = nn.Linear(HIDDEN * (2 if bidirectional else 1), CLASSES)

    def forward(self, tokens: Tensor) -> Tensor:
        batch, time = tokens.shape
        out, _ = self.rnn(self.embed(tokens).transpose(0, 1))
        out = out.reshape(batch, time, -1) if self.leak else out.transpose(0, 1)
        return self.head(out)


class PackedClassifier(nn.Module):
    """Correct: padded features + lengths -> packs -> (per-step logits padded to the input's time, last valid
    hidden -> class logits)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, h_n = self.rnn(packed)
        steps, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.head(h_n[-1]), steps


class UnpackedClassifier(nn.Module):
    """BUG: ignores the lengths, runs through the padding and classifies the LAST padded step."""

    def __init__(self, bidirectional: bool = False) -> None:
        super().__init__()
        self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(HIDDEN * (2 if bidirectional else 1), CLASSES)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        out, _ = self.rnn(x)
        return self.head(out[:, -1]), out


class PackedInput(nn.Module):
    """Correct: takes a PackedSequence, returns a PackedSequence and h_n."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True)

    def forward(self, packed: PackedSequence) -> tuple[PackedSequence, Tensor]:
        return self.rnn(packed)


class CellLoopTagger(nn.Module):
    """Correct: an LSTMCell stepped in a Python loop over batch-first features -> per-step logits;
    ``mean_over_batch`` plants a bug: each step's state gets the batch mean added."""

    def __init__(self, mean_over_batch: bool = False) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(H_IN, HIDDEN)
        self.head = nn.Linear(HIDDEN, CLASSES)
        self.mean_over_batch = mean_over_batch

    def forward(self, x: Tensor) -> Tensor:
        h = c = x.new_zeros(x.shape[0], HIDDEN)
        steps = []
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
            steps.append(h + h.mean(dim=0, keepdim=True) if self.mean_over_batch else h)
        return self.head(torch.stack(steps, dim=1))


class PackedTokenTagger(nn.Module):
    """Correct (issue 18): the caller packs token indices; the model embeds ``packed.data`` and pads back."""

    def __init__(self, bidirectional: bool = False) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, H_IN)
        self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(HIDDEN * (2 if bidirectional else 1), CLASSES)

    def forward(self, packed: PackedSequence) -> Tensor:
        out, _ = self.rnn(packed._replace(data=self.emb(packed.data)))
        return self.head(pad_packed_sequence(out, batch_first=True)[0])


class StatefulTokenTagger(nn.Module):
    """Correct: (token indices, h0) -> per-step logits; ``leak`` plants the .view bug after the GRU."""

    def __init__(self, leak: bool = False) -> None:
        super().__init__()
        self.leak = leak
        self.embed = nn.Embedding(VOCAB, H_IN)
        self.rnn = nn.GRU(H_IN, HIDDEN)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, tokens: Tensor, h0: Tensor) -> Tensor:
        batch, time = tokens.shape
        out, _ = self.rnn(self.embed(tokens).transpose(0, 1), h0)
        return self.head(out.reshape(batch, time, -1) if self.leak else out.transpose(0, 1))


class PaddedBackTagger(nn.Module):
    """Correct: (padded features, lengths) -> packs -> pads back WITHOUT total_length, so its output has the
    longest length's steps, not the padded input's."""

    def __init__(self, bidirectional: bool = False) -> None:
        super().__init__()
        self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(HIDDEN * (2 if bidirectional else 1), CLASSES)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        out, _ = self.rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        return self.head(pad_packed_sequence(out, batch_first=True)[0])


class BatchFirstMismatch(nn.Module):
    """BUG: a GRU built time-first (no batch_first=True) is fed batch-first features: it runs across the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(H_IN, HIDDEN)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(x)[0])


class MeanOverBatch(nn.Module):
    """BUG: normalises the GRU output by its mean over the batch axis."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return out - out.mean(dim=0, keepdim=True)


class CentredConvTagger(nn.Module):
    """BUG for streaming: a centred convolution (kernel 2k+1, padding k) before a GRU reads k steps ahead."""

    def __init__(self, k: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(H_IN, H_IN, kernel_size=2 * k + 1, padding=k)
        self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(self.conv(x.transpose(1, 2)).transpose(1, 2))[0])


class LSTMNet(nn.Module):
    """Returns (out, (h, c)) like nn.LSTM; ``swap_hidden`` plants a bug: h with batch first."""

    def __init__(self, input: int, hidden: int, layers: int, swap_hidden: bool = False) -> None:
        super().__init__()
        self.swap_hidden = swap_hidden
        self.rnn = nn.LSTM(input, hidden, num_layers=layers, bidirectional=True, batch_first=True)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        out, (h, c) = self.rnn(x)
        if self.swap_hidden:
            h = h.transpose(0, 1).contiguous()
        return out, (h, c)


class BiGRU(nn.Module):
    """Bidirectional, batch-first: ``output`` is ``batch time 2*hidden``, ``h_n`` is ``2 batch hidden``.

    ``half`` plants a bug: only the forward direction's half of the output (hidden wide, not 2*hidden);
    ``batch_first_state`` another: h_n transposed to ``batch 2 hidden``."""

    def __init__(self, input: int, hidden: int, half: bool = False, batch_first_state: bool = False) -> None:
        super().__init__()
        self.rnn = nn.GRU(input, hidden, batch_first=True, bidirectional=True)
        self.hidden, self.half, self.batch_first_state = hidden, half, batch_first_state

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out, h_n = self.rnn(x)
        if self.half:
            out = out[..., : self.hidden]
        return out, h_n.transpose(0, 1) if self.batch_first_state else h_n


def features(batch: int = 3, time: int = 4, seed: int = 0) -> Tensor:
    return torch.randn(batch, time, H_IN, generator=torch.Generator().manual_seed(seed))


def tokens(batch: int = 3, time: int = 4, seed: int = 0) -> Tensor:
    return torch.randint(1, VOCAB, (batch, time), generator=torch.Generator().manual_seed(seed))


class CourseBiGRUHead(nn.Module):
    """BUG (the course's 13_2): classifies from ``h_n[-1]`` of a 2-layer bidirectional GRU, which is the
    BACKWARD direction of the last layer only: that layer's forward direction never reaches the loss (its
    gradient is exactly zero), yet the model trains, overfits and matches packed == unbatched."""

    def __init__(self, layers: int = 2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, H_IN, padding_idx=0)
        self.rnn = nn.GRU(H_IN, HIDDEN, num_layers=layers, bidirectional=True, batch_first=True)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(self.embedding(tokens), lengths, batch_first=True, enforce_sorted=False)
        _, h_n = self.rnn(packed)
        return self.head(h_n[-1])  # should be torch.cat([h_n[-2], h_n[-1]], dim=-1) into 2*HIDDEN


class ConvGRUTagger(nn.Module):
    """A streaming tagger: a 1-D convolution over time (kernel ``kernel``) before a GRU, per-step logits.

    ``causal=True`` pads the convolution on the left only (``kernel - 1`` steps), so step t sees steps
    t-kernel+1..t: correct for streaming. ``causal=False`` plants the common bug: symmetric padding
    (``padding=kernel // 2``), so step t also sees ``kernel // 2`` steps AHEAD."""

    def __init__(self, causal: bool = True, kernel: int = 5) -> None:
        super().__init__()
        self.causal, self.kernel = causal, kernel
        self.conv = nn.Conv1d(H_IN, HIDDEN, kernel, padding=0 if causal else kernel // 2)
        self.rnn = nn.GRU(HIDDEN, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x: Tensor) -> Tensor:  # batch time input -> batch time classes
        y = x.transpose(1, 2)  # batch input time: Conv1d's layout
        if self.causal:
            y = nn.functional.pad(y, (self.kernel - 1, 0))
        out, _ = self.rnn(self.conv(y).transpose(1, 2))
        return self.head(out)


# Inputs that cannot show the fault a check looks for: the check passes and says it proved nothing.
VACUOUS_BATCH = features(batch=1)  # check_batch_independence: no other example to leak from
VACUOUS_STEPS = features(time=1)  # check_causal: no later step to peek at
VACUOUS_LENGTHS = torch.tensor([4, 4, 4])  # padding checks on features(): every length is the padded time
