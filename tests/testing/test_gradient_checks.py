"""check_batch_independence and check_causal: pass on correct models, name the fault on planted bugs."""

import collections

import pytest
import torch
from rnn_zoo import (
    HIDDEN,
    BatchFirstMismatch,
    CentredConvTagger,
    CumsumOverBatch,
    EmbedTagger,
    MeanOverBatch,
    PackedInput,
    PackedTokenTagger,
    PaddedBackTagger,
    StatefulTokenTagger,
    Tagger,
    TimeFirstTagger,
    ViewLeakTagger,
    features,
    tokens,
)
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

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


def test_an_embedding_that_reads_its_input_twice_is_probed_at_one_embedding_of_it():
    class Twice(nn.Module):
        def __init__(self, leak: bool = False):
            super().__init__()
            self.leak = leak
            self.embed = nn.Embedding(5, 3)

        def forward(self, t):
            # a leak in the second read, a view of the last example's tokens for every example
            second = self.embed(t[-1:].expand_as(t) if self.leak else t)
            return self.embed(t) + second

    ids = torch.tensor([[1, 2, 3], [4, 0, 2]])
    found = check_batch_independence(Twice(), ids)
    assert found.shape == (2, 2)
    with pytest.raises(
        CheckFailed, match=r"the embedding by model\.embed \(Embedding\) of input 0 \(read in 2 calls"
    ):
        check_batch_independence(Twice(leak=True), ids)


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


# Issue 12, item 2: the hint reads the evidence


def test_a_recurrence_across_the_batch_is_named_from_its_lower_triangular_leak():
    with pytest.raises(CheckFailed, match=r"hint: a lower-triangular leak with example 0 clean") as info:
        check_batch_independence(BatchFirstMismatch(), features(batch=4, time=3))
    assert "batch_first mismatch" in str(info.value)
    with pytest.raises(CheckFailed, match=r"hint: a lower-triangular leak with example 0 clean"):
        check_batch_independence(CumsumOverBatch(), features(batch=4))


def test_the_view_of_a_time_first_tensor_is_named_from_its_own_pattern():
    expected = (
        r"hint: this is the pattern of a time-first \(time, batch, \.\.\.\) tensor viewed as \(batch, time, "
        r"\.\.\.\) \(time = 2\): each example reads a run of 2 consecutive examples"
    )
    with pytest.raises(CheckFailed, match=expected):
        check_batch_independence(ViewLeakTagger(), features(batch=6, time=2))
    with pytest.raises(CheckFailed, match=expected):  # the same bug seen through token indices
        check_batch_independence(EmbedTagger(leak=True), tokens(batch=6, time=2))


def test_a_mean_over_the_batch_is_named_from_its_full_matrix():
    with pytest.raises(CheckFailed, match=r"hint: every example reads every other one: a mean"):
        check_batch_independence(MeanOverBatch(), features(batch=4))


def test_causal_names_a_leak_from_every_later_step_and_a_band_of_k_steps():
    with pytest.raises(CheckFailed, match=r"hint: every output step reads EVERY later step: a bidirectional"):
        check_causal(Tagger(bidirectional=True), features(time=6))
    with pytest.raises(CheckFailed, match=r"a band of 1 step ahead.*\(kernel 3 with padding 1"):
        check_causal(CentredConvTagger(k=1), features(time=6))
    with pytest.raises(CheckFailed, match=r"reads the inputs up to t\+2 .*a band of 2 steps ahead.*kernel 5"):
        check_causal(CentredConvTagger(k=2), features(time=7))


# Issue 18, items 1, 4 and 6: what the gradient probes differentiate


def test_packed_token_indices_are_mapped_back_to_examples_and_steps():
    # the tagger: the caller packs token indices, the model embeds packed.data (total, embed)
    x, lengths = tokens(batch=4, time=8), torch.tensor([8, 5, 3, 8])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    causal = check_causal(PackedTokenTagger(), packed, time_axis=1)
    assert causal.shape == (8, 8)
    batch = check_batch_independence(PackedTokenTagger(), packed)
    assert batch.shape == (4, 4) and bool((batch.diagonal() > 0).all())
    # embed == time length once produced a bogus leak: no longer
    embed_is_time = pack_padded_sequence(tokens(batch=4, time=3), torch.tensor([3, 2, 3, 1]), batch_first=True,
                                         enforce_sorted=False)  # fmt: skip
    check_causal(PackedTokenTagger(), embed_is_time)
    with pytest.raises(
        CheckFailed, match=r"(?s)(?=.*packed rows mapped back to \(example, step\))(?=.*EVERY later step)"
    ):
        check_causal(PackedTokenTagger(bidirectional=True), packed)


def test_a_packed_tagger_padded_back_without_total_length_is_compared_on_the_common_steps():
    x, lengths = features(batch=3, time=7), torch.tensor([5, 3, 4])  # padded to 7, the longest is 5
    found = check_causal(PaddedBackTagger(), (x, lengths))
    assert found.shape == (5, 5)
    assert "compared the 5 steps both have" in found.how
    with pytest.raises(CheckFailed, match=r"causality failed(.|\n)*compared the 5 steps both have"):
        check_causal(PaddedBackTagger(bidirectional=True), (x, lengths))
    check_batch_independence(PaddedBackTagger(), (x, lengths))


def test_an_output_with_other_steps_says_different_sizes_and_why_they_are_no_padding():
    class Strided(nn.Module):  # every second step: 3 output steps for 6 input steps, which they do read
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(3, 4, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0][:, 1::2]

    with pytest.raises(CheckFailed, match=r"different sizes(.|\n)*the output's steps are not the input's"):
        check_causal(Strided(), features(time=6))


def test_token_indices_next_to_a_float_state_are_probed_at_their_embedding():
    x, h0 = tokens(batch=6, time=2), torch.zeros(1, 6, HIDDEN)
    found = check_batch_independence(StatefulTokenTagger(), (x, h0))
    assert found.shape == (6, 6)
    with pytest.raises(
        CheckFailed,
        match=r"the output of model\.embed \(Embedding\) \(hooked: input 0 holds token indices; float input 1 "
        r"not differentiated, pass wrt=1",
    ):
        check_batch_independence(StatefulTokenTagger(leak=True), (x, h0))
    check_causal(StatefulTokenTagger(), (x, h0))
    # wrt=1 still picks h0 (its batch axis is 1)
    check_batch_independence(StatefulTokenTagger(), (x, h0), wrt=1, batch_axis=1, output_batch_axis=0)


def test_an_integer_mask_next_to_float_features_does_not_divert_the_probe():
    class Masked(nn.Module):  # an embedding of positions, and an integer mask shaped like the tokens would be
        def __init__(self):
            super().__init__()
            self.pos = nn.Embedding(10, 3)
            self.rnn = nn.GRU(3, 4, batch_first=True)

        def forward(self, x, mask):
            x = x + self.pos(torch.arange(x.shape[1]))
            return self.rnn(x)[0] * mask.unsqueeze(-1)

    x = features(batch=3, time=4)
    found = check_batch_independence(Masked(), (x, torch.ones(3, 4, dtype=torch.long)))
    assert found.shape == (3, 3)


def test_token_ids_the_model_transposes_are_read_in_the_callers_layout():
    # the course's 13_1 pattern: (batch, time) ids, .t() inside, a time-first GRU; batch_axis means the caller's
    class SentenceClassifier(nn.Module):
        def __init__(self, leak: bool = False):
            super().__init__()
            self.leak = leak
            self.embedding, self.gru, self.head = (
                nn.Embedding(30, 8),
                nn.GRU(8, 12, num_layers=2),
                nn.Linear(12, 3),
            )

        def forward(self, ids):
            emb = self.embedding(ids.t())  # (time, batch, embed)
            _, h_n = self.gru(emb, torch.zeros(2, ids.size(0), 12))
            out = self.head(h_n[-1])  # (batch, classes)
            return out + out.mean(0) if self.leak else out

    x = torch.randint(1, 30, (4, 7))
    influence = check_batch_independence(SentenceClassifier(), x)
    assert influence.shape == (4, 4)
    with pytest.raises(CheckFailed, match=r"\(i <- j\) are not"):  # the leaf is in the caller's (batch, time)
        check_batch_independence(SentenceClassifier(leak=True), x)


class StatefulLM(nn.Module):
    """pytorch/examples' word language model shape: time-first token ids and an LSTM state (h0, c0)."""

    def __init__(self, proj_size: int = 0, leak: bool = False):
        super().__init__()
        self.leak = leak
        self.embed = nn.Embedding(20, 6)
        self.rnn = nn.LSTM(6, HIDDEN, num_layers=2, proj_size=proj_size)
        self.head = nn.Linear(proj_size or HIDDEN, 20)

    def forward(self, ids, hidden):
        h, c = hidden
        if self.leak:  # the batch's mean state added to every example: a leak through c0 only
            c = c + c.mean(1, keepdim=True)
        out, hidden = self.rnn(self.embed(ids), (h, c))
        return self.head(out), hidden


@pytest.mark.parametrize("proj_size", [0, 3])
def test_wrt_an_lstm_state_tuple_differentiates_h0_and_c0_together(proj_size):
    torch.manual_seed(0)
    layers_dirs, batch, time = 2, 5, 4
    ids = torch.randint(0, 20, (time, batch))
    state = (torch.randn(layers_dirs, batch, proj_size or HIDDEN), torch.randn(layers_dirs, batch, HIDDEN))
    kwargs = dict(wrt=1, batch_axis=1, output_batch_axis=1)
    model = StatefulLM(proj_size)
    found = check_batch_independence(model, (ids, state), **kwargs)
    assert found.shape == (batch, batch) and found.how.startswith("batched")
    assert "no batching rule" not in found.how  # oneDNN's LSTM backward is off during the check
    assert torch.allclose(found, check_batch_independence(model, (ids, state), chunk_size=1, **kwargs))
    # a list and a namedtuple state work alike; the model gets copies, so in-place updates of the state are fine
    state_tuple = collections.namedtuple("State", "h c")(*state)
    assert torch.equal(found, check_batch_independence(model, (ids, state_tuple), **kwargs))
    assert torch.equal(found, check_batch_independence(model, (ids, list(state)), **kwargs))
    with pytest.raises(
        CheckFailed,
        match=r"with respect to input 1 \(its 2 tensors joined on the last axis\) \(batch axis 1\)",
    ):
        check_batch_independence(StatefulLM(proj_size, leak=True), (ids, state), **kwargs)
    # the default still differentiates the embedded tokens, where the leak through c0 cannot show
    check_batch_independence(StatefulLM(proj_size, leak=True), (ids, state), batch_axis=1)


def test_wrt_a_tuple_that_is_not_a_state_is_refused_with_what_it_takes():
    ids, pair = tokens(batch=3, time=2), (torch.zeros(1, 3, HIDDEN), torch.zeros(2, 3, HIDDEN))
    with pytest.raises(
        ValueError, match=r"wrt=1 must index a floating-point input \(or a tuple of them sharing all"
    ):
        check_batch_independence(StatefulTokenTagger(), (ids, pair), wrt=1)


class TwoGRUs(nn.Module):
    """A GRU whose (output, h_n) feeds a second GRU: wrt=model.first differentiates its output."""

    def __init__(self, packed: bool = False, bidirectional: bool = False):
        super().__init__()
        self.packed = packed
        self.first = nn.GRU(3, HIDDEN, batch_first=True)
        self.second = nn.GRU(HIDDEN, HIDDEN, batch_first=True, bidirectional=bidirectional)

    def forward(self, x, lengths):
        if self.packed:
            out, _ = self.first(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        else:
            out, _ = self.first(x)
        return self.second(out)[0]


@pytest.mark.parametrize("packed", [False, True])
def test_wrt_a_module_that_returns_a_tuple_differentiates_its_first_tensor(packed):
    x, lengths = features(batch=4, time=5), torch.tensor([5, 2, 4, 3])
    model = TwoGRUs(packed)
    found = check_causal(model, (x, lengths), wrt=model.first)
    assert found.shape == (5, 5)
    assert check_batch_independence(model, (x, lengths), wrt=model.first).shape == (4, 4)
    leaky = TwoGRUs(packed, bidirectional=True)
    with pytest.raises(
        CheckFailed, match=r"the first tensor of the output of model\.first \(GRU\) \(hooked: wrt names it"
    ):
        check_causal(leaky, (x, lengths), wrt=leaky.first)


def test_wrt_a_module_that_returns_no_float_tensor_says_so():
    class Ids(nn.Module):
        def forward(self, x):
            return x.argmax(-1)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.ids, self.embed, self.rnn = Ids(), nn.Embedding(3, 4), nn.GRU(4, 4, batch_first=True)

        def forward(self, x):
            return self.rnn(self.embed(self.ids(x)))[0]

    model = Model()
    with pytest.raises(
        ValueError, match=r"model\.ids \(Ids\) returned Tensor\(int64, shape \(4, 5\)\), which holds no float"
    ):
        check_causal(model, features(batch=4, time=5), wrt=model.ids)


class FlatLM(nn.Module):
    """pytorch/examples' word language model: logits flattened to (time*batch, ntoken) for the loss."""

    def __init__(self, batch_first: bool = False):
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.rnn = nn.GRU(6, HIDDEN, batch_first=batch_first)
        self.head = nn.Linear(HIDDEN, 20)

    def forward(self, ids, hidden):
        output, hidden = self.rnn(self.embed(ids), hidden)
        return self.head(output).view(-1, 20), hidden


@pytest.mark.parametrize("batch_first", [False, True])
def test_a_flattened_output_is_refused_at_once_with_the_view_that_restores_it_and_that_view_passes(
    batch_first,
):
    torch.manual_seed(0)
    time, batch = 7, 3
    model, h0 = FlatLM(batch_first), torch.zeros(1, batch, HIDDEN)
    ids = torch.randint(0, 20, (batch, time) if batch_first else (time, batch))
    b_axis, t_axis = (0, 1) if batch_first else (1, 0)
    shape = f"{batch}, {time}" if batch_first else f"{time}, {batch}"
    with pytest.raises(
        CheckFailed, match=rf"output=lambda r: r\[0\]\.view\({shape}, -1\), output_batch_axis={b_axis}"
    ):
        check_batch_independence(model, (ids, h0), batch_axis=b_axis)
    with pytest.raises(
        CheckFailed, match=rf"output=lambda r: r\[0\]\.view\({shape}, -1\), output_time_axis={t_axis}"
    ):
        check_causal(model, (ids, h0), time_axis=t_axis)
    view = (batch, time, -1) if batch_first else (time, batch, -1)
    check_batch_independence(model, (ids, h0), batch_axis=b_axis, output=lambda r: r[0].view(*view))
    found = check_causal(model, (ids, h0), time_axis=t_axis, output=lambda r: r[0].view(*view))
    assert found.shape == (time, time)


def test_an_output_axis_left_at_its_default_is_named_with_the_axis_or_tensor_that_fits():
    class TimeFirstClassifier(
        nn.Module
    ):  # the char-RNN tutorial's layout: (time, batch, input) -> (batch, classes)
        def __init__(self):
            super().__init__()
            self.rnn, self.head = nn.GRU(3, HIDDEN), nn.Linear(HIDDEN, 2)

        def forward(self, x):
            return self.head(self.rnn(x)[1][-1])

    class DictTagger(
        nn.Module
    ):  # the first tensor of the result is the state, the per-step logits come second
        def __init__(self):
            super().__init__()
            self.rnn, self.head = nn.GRU(3, HIDDEN, batch_first=True), nn.Linear(HIDDEN, 2)

        def forward(self, x):
            out, h_n = self.rnn(x)
            return {"hidden": h_n, "logits": self.head(out)}

    x = torch.randn(6, 4, 3)  # time 6, batch 4
    with pytest.raises(
        CheckFailed, match=r"axis 0 of the output has the input's size 4: pass output_batch_axis=0"
    ):
        check_batch_independence(TimeFirstClassifier(), x, batch_axis=1)
    check_batch_independence(TimeFirstClassifier(), x, batch_axis=1, output_batch_axis=0)
    with pytest.raises(CheckFailed, match=r"pass output=lambda r: r\['logits'\] to check that one"):
        check_causal(DictTagger(), features(batch=4, time=6))
    check_causal(DictTagger(), features(batch=4, time=6), output=lambda r: r["logits"])


class TeacherForced(nn.Module):
    """The PyTorch seq2seq tutorial's decoder loop: one embedding call per step, fed target[:, t - 1]
    (a start token first); ``peek`` feeds target[:, t + 1] at step t instead, a decoder that reads the future."""

    def __init__(self, peek: bool = False):
        super().__init__()
        self.peek = peek
        self.embed = nn.Embedding(12, 5)
        self.cell = nn.GRUCell(5, HIDDEN)
        self.out = nn.Linear(HIDDEN, 12)

    def forward(self, source, target):
        h = self.cell(self.embed(source).mean(1))  # the "encoder": a summary of the source
        step_input = torch.zeros(target.shape[0], dtype=torch.long)  # the start token
        outputs = []
        for t in range(target.shape[1]):
            h = self.cell(self.embed(step_input), h)
            outputs.append(self.out(h))
            nxt = t + 2 if self.peek else t  # the input of step t + 1
            step_input = target[:, min(nxt, target.shape[1] - 1)]  # teacher forcing, a view of the target
        return torch.stack(outputs, dim=1)


def test_a_decoder_that_embeds_the_target_one_step_at_a_time_is_checked_with_wrt_its_position():
    torch.manual_seed(0)
    source, target = torch.randint(1, 12, (3, 4)), torch.randint(1, 12, (3, 6))
    model = TeacherForced()
    found = check_causal(model, (source, target), wrt=1)
    assert found.shape == (6, 6)
    assert bool((found.diagonal() == 0).all()) and bool((found.diagonal(-1) > 0).all())  # step t reads t - 1
    assert float(found[:, 5].abs().max()) == 0.0  # the last target token is never fed
    assert check_batch_independence(model, (source, target), wrt=1).shape == (3, 3)
    with pytest.raises(
        CheckFailed,
        match=r"the embedding by model\.embed \(Embedding\) of input 1 \(read in 5 calls, as rows of one tensor",
    ):
        check_causal(TeacherForced(peek=True), (source, target), wrt=1)
    with pytest.raises(ValueError, match=r"ran 7 times(.|\n)*wrt=<that input's position>"):
        check_causal(model, (source, target), wrt=model.embed)


def test_a_model_that_predicts_beyond_its_input_is_shown_the_slice_that_checks_it():
    class Future(nn.Module):  # pytorch/examples' time_sequence_prediction: 3 steps past the 12 it is given
        def __init__(self):
            super().__init__()
            self.cell, self.head = nn.LSTMCell(1, 8), nn.Linear(8, 1)

        def forward(self, x, future=3):
            h = c = torch.zeros(x.shape[0], 8)
            outputs = []
            for t in range(x.shape[1]):
                h, c = self.cell(x[:, t : t + 1], (h, c))
                outputs.append(self.head(h))
            for _ in range(future):
                h, c = self.cell(outputs[-1], (h, c))
                outputs.append(self.head(h))
            return torch.cat(outputs, dim=1)  # (batch, 12 + future)

    x = torch.randn(4, 12)
    with pytest.raises(
        CheckFailed,
        match=r"causal on the steps it was given: compare those with output=lambda r: r\[:, :12\]",
    ):
        check_causal(Future(), x, time_axis=1)
    check_causal(Future(), x, time_axis=1, output=lambda r: r[:, :12])  # the hint's fix passes


class StridedStreaming(nn.Module):
    """A streaming model whose conv front-end halves the time (kernel 2, stride 2), then a unidirectional GRU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(13, 16, kernel_size=2, stride=2)
        self.rnn = nn.GRU(16, 16, batch_first=True)
        self.fc = nn.Linear(16, 29)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(self.conv(x.transpose(1, 2)).transpose(1, 2))[0])


def test_a_strided_front_end_is_told_how_to_check_the_rest_at_the_outputs_rate():
    model, x = StridedStreaming(), torch.randn(4, 40, 13)
    with pytest.raises(
        CheckFailed, match=r"strided convolution before the recurrent layer: wrt=<that front-end"
    ):
        check_causal(model, x)
    influence = check_causal(model, x, wrt=model.conv, time_axis=2, output_time_axis=1)  # the advice, applied
    assert (
        influence.shape == (20, 20) and not influence.triu(1).any() and bool((influence.diagonal() > 0).all())
    )
