"""rnnshapes.testing on the lesson 14 models: the checks apply to seq2seq, and catch what seq2seq gets wrong.

Each model is called ``model(source, lengths, target_in)``: source and target are token indices read by ONE
shared ``nn.Embedding``, so the gradient checks pick the embedding call by the input it reads (``wrt=0`` the
source, ``wrt=2`` the target). Each check is shown passing on the correct models and failing on a model with
the bug it exists for.
"""

import pytest
import torch
from torch import Tensor

from rnnshapes.data._pairs import Pair, encode_pairs
from rnnshapes.models import Seq2Seq, Seq2SeqAttention
from rnnshapes.testing import (
    CheckFailed,
    check_batch_independence,
    check_causal,
    check_padding_invariance,
)

SMALL = {"embed": 8, "hidden": 16, "max_target": 30}
PAIRS = [
    Pair("thisis.", "This is."),
    Pair("a", "A"),
    Pair("romeo:", "ROMEO:"),
    Pair("goodmorrow,sir.", "Good morrow, sir."),
]
MODELS = [Seq2Seq, Seq2SeqAttention]


@pytest.fixture(params=MODELS, ids=lambda c: c.__name__)
def model(request):
    torch.manual_seed(0)
    return request.param(**SMALL)


@pytest.fixture
def batch():
    return encode_pairs(PAIRS)  # source (4, 15) padded, lengths (4,), target_in (4, 18)


class Unmasked(Seq2SeqAttention):
    """The course's attention: softmax over every source position, padding included."""

    @staticmethod
    def _mask(lengths: Tensor, source: int, device: torch.device) -> Tensor:
        return torch.ones(len(lengths), source, dtype=torch.bool, device=device)


class PeekingDecoder(Seq2Seq):
    """A decoder fed each character plus the NEXT one: under teacher forcing it sees the answer."""

    def _decode(self, target_in, hidden, memory, mask):
        embedded = self.embedding(target_in)  # (batch, target, embed)
        peek = torch.roll(embedded, -1, dims=1)  # (batch, target, embed): the next character's embedding
        summary = self.summary(memory, mask)[:, None, :].expand(-1, target_in.shape[1], -1)
        output, hidden = self.decoder(torch.cat([embedded + peek, summary], dim=-1), hidden)
        return self.head(output), hidden, None


class BatchStatistics(Seq2Seq):
    """Normalises the encoder summary over the batch, so one line's source changes another's output."""

    def summary(self, memory, mask):
        s = super().summary(memory, mask)
        return s - s.mean(0, keepdim=True)


def test_batch_independence_of_the_source(model, batch):
    inputs = (batch.source, batch.source_lengths, batch.target_in)
    influence = check_batch_independence(model, inputs, wrt=0)
    assert influence.shape == (4, 4)
    assert bool((influence.diagonal() > 0).all())  # each line's output reads its own source


def test_batch_independence_catches_batch_statistics(batch):
    torch.manual_seed(0)
    with pytest.raises(CheckFailed, match="depends on OTHER examples(.|\n)*where it reads input 0"):
        check_batch_independence(
            BatchStatistics(**SMALL), (batch.source, batch.source_lengths, batch.target_in), wrt=0
        )


def test_the_decoder_is_causal_over_target_steps(model, batch):
    inputs = (batch.source, batch.source_lengths, batch.target_in)
    influence = check_causal(model, inputs, wrt=2, time_axis=1)
    steps = batch.target_in.shape[1]
    assert influence.shape == (steps, steps)
    assert bool((influence.triu(1) == 0).all())
    assert bool((influence.diagonal() > 0).all())  # step t reads the character fed at t


def test_causality_catches_a_decoder_that_reads_the_next_character(batch):
    torch.manual_seed(0)
    inputs = (batch.source, batch.source_lengths, batch.target_in)
    with pytest.raises(CheckFailed, match="depends on inputs from the future(.|\n)*where it reads input 2"):
        check_causal(PeekingDecoder(**SMALL), inputs, wrt=2, time_axis=1)


def test_the_target_is_found_by_the_input_it_reads(model, batch):
    """The shared embedding runs twice (source, then target); the message names which call is probed."""
    inputs = (batch.source, batch.source_lengths, batch.target_in)
    with pytest.raises(CheckFailed, match=r"model\.embedding \(Embedding\) where it reads input 0"):
        # source steps are not causal for the target's outputs (the encoder reads the whole source)
        check_causal(model, inputs, wrt=0, time_axis=1)


def test_source_padding_changes_nothing(model, batch):
    target_in = batch.target_in
    check_padding_invariance(
        model,
        batch.source,
        batch.source_lengths,
        call=lambda m, source, lengths: m(source, lengths, target_in),
        atol=1e-5,
    )


def test_padding_invariance_catches_unmasked_attention(batch):
    torch.manual_seed(0)
    target_in = batch.target_in
    with pytest.raises(CheckFailed, match="padding changes the results"):
        check_padding_invariance(
            Unmasked(**SMALL),
            batch.source,
            batch.source_lengths,
            call=lambda m, source, lengths: m(source, lengths, target_in)[0],
            atol=1e-5,
        )
