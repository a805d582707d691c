"""check_batch_independence and check_causal: pass on correct models, name the fault on planted bugs."""

import pytest
import torch
from rnn_zoo import (
    CumsumOverBatch,
    EmbedTagger,
    PackedInput,
    Tagger,
    TimeFirstTagger,
    ViewLeakTagger,
    features,
    tokens,
)
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from rnnshapes.testing import CheckFailed, check_batch_independence, check_causal


def test_batch_independence_passes_on_a_correct_model_and_returns_the_influence_matrix():
    influence = check_batch_independence(Tagger(), features(batch=3))
    assert influence.shape == (3, 3)
    assert bool((influence.diagonal() > 0).all())
    assert float((influence - torch.diag(influence.diagonal())).abs().max()) == 0.0


def test_the_view_instead_of_transpose_leak_is_caught_with_pairs_and_hint():
    with pytest.raises(CheckFailed, match=r"batch independence failed") as info:
        check_batch_independence(ViewLeakTagger(), features(batch=3, time=4))
    message = str(info.value)
    assert "pairs (i <- j) max|grad|:" in message
    assert "(0<-1)" in message
    assert ".view(batch, time, -1)" in message  # the hint names the usual cause
    assert isinstance(info.value, AssertionError)


def test_every_example_is_checked_not_only_example_0():
    # Example 0 of a cumsum over the batch is clean: a check of example 0 alone passes it.
    model = CumsumOverBatch()
    x = features(batch=3)
    out = model(x.requires_grad_())
    (grad,) = torch.autograd.grad(out[0].sum(), x)
    assert float(grad[1:].abs().max()) == 0.0  # what a row-0-only check would see
    with pytest.raises(AssertionError, match=r"examples whose output is clean: \[0\]") as info:
        check_batch_independence(model, features(batch=3))
    assert "(1<-0)" in str(info.value) and "(2<-1)" in str(info.value)
    assert "(0<-1)" not in str(info.value)


def test_integer_inputs_are_probed_at_the_embedding_output():
    check_batch_independence(EmbedTagger(), tokens())
    with pytest.raises(CheckFailed, match=r"the output of model\.embed \(Embedding\)"):
        check_batch_independence(EmbedTagger(leak=True), tokens())


def test_an_embedding_run_twice_cannot_be_probed():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(5, 3)

        def forward(self, t):
            return self.embed(t) + self.embed(t)

    with pytest.raises(ValueError, match="ran 2 times in one call"):
        check_batch_independence(Twice(), torch.zeros(2, 3, dtype=torch.long))


def test_time_first_model_and_hidden_state_output_axes():
    x = features().transpose(0, 1)  # time batch input
    check_batch_independence(TimeFirstTagger(), x, batch_axis=1)
    # h_n is layers*dirs batch hidden: batch at axis 1 while the input is batch_first
    check_batch_independence(Tagger(), features(), output=lambda r: r[1], output_batch_axis=1)


def test_wrong_output_batch_axis_is_reported_with_both_sizes():
    with pytest.raises(CheckFailed, match=r"different sizes(.|\n)*has 1 along axis 0(.|\n)*has batch 3"):
        check_batch_independence(Tagger(), features(batch=3), output=lambda r: r[1])


def test_packed_sequence_inputs_are_padded_back_for_the_gradients():
    x = features(batch=3, time=4)
    packed = pack_padded_sequence(x, torch.tensor([4, 2, 3]), batch_first=True, enforce_sorted=False)
    influence = check_batch_independence(PackedInput(), packed)
    assert influence.shape == (3, 3)


def test_an_output_detached_from_the_input_is_reported_not_passed():
    class Detached(nn.Module):
        def forward(self, x):
            return x.detach() * 2

    with pytest.raises(CheckFailed, match="does not depend on input 0 at all"):
        check_batch_independence(Detached(), features())


def test_causal_passes_on_unidirectional_models_batch_first_and_time_first():
    influence = check_causal(Tagger(), features(time=5), time_axis=1)
    assert influence.shape == (5, 5)
    assert float(influence.triu(diagonal=1).abs().max()) == 0.0
    check_causal(TimeFirstTagger(), features().transpose(0, 1), time_axis=0)
    check_causal(EmbedTagger(), tokens())


def test_causal_fails_on_a_bidirectional_model_naming_future_steps():
    with pytest.raises(CheckFailed, match=r"depends on inputs from the future") as info:
        check_causal(Tagger(bidirectional=True), features(time=4))
    message = str(info.value)
    assert "6 of 6 pairs (t <- t') are not, the first at output step 0" in message
    assert "(0<-3)" in message and "bidirectional=True" in message


def test_causal_fails_on_the_view_leak_with_integer_inputs():
    # .view on a time-first tensor also moves later steps of the sequence into early positions
    with pytest.raises(CheckFailed, match=r"causality failed"):
        check_causal(EmbedTagger(leak=True), tokens(batch=3, time=4))


def test_causal_on_a_model_without_time_in_its_output_says_so():
    with pytest.raises(CheckFailed, match="time axis and the input's time axis have different sizes"):
        check_causal(Tagger(), features(time=4), output=lambda r: r[1][-1])


def test_model_mode_is_restored_after_a_check():
    model = Tagger()
    model.train()
    check_batch_independence(model, features())
    assert model.training and model.rnn.training
    model.eval()
    with pytest.raises(CheckFailed):
        check_causal(Tagger(bidirectional=True).eval(), features())
    assert not model.training
