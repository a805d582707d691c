"""check_packed_matches_unbatched and check_padding_invariance."""

import pytest
import torch
from rnn_zoo import H_IN, EmbedTagger, PackedClassifier, PackedInput, UnpackedClassifier, features, tokens
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnshapes.testing import CheckFailed, check_packed_matches_unbatched, check_padding_invariance

LENGTHS = torch.tensor([4, 2, 3])


def padded(batch=3, time=4, lengths=LENGTHS):
    x = features(batch, time)
    steps = torch.arange(time).view(1, -1, 1)
    return torch.where(steps < lengths.view(-1, 1, 1), x, torch.zeros(()))


def test_a_packing_model_matches_unbatched_runs_for_logits_and_per_step_outputs():
    x = padded()
    check_packed_matches_unbatched(PackedClassifier(), x, LENGTHS)  # logits per sequence
    check_packed_matches_unbatched(PackedClassifier(), x, LENGTHS, output=lambda r: r[1])  # per step
    check_packed_matches_unbatched(PackedClassifier(), x, LENGTHS.tolist())  # lengths as a list


def test_the_last_padded_step_instead_of_the_last_valid_one_is_caught():
    with pytest.raises(
        CheckFailed, match=r"2 of 3 examples differ \(2 are shorter than the padded time 4\)"
    ) as info:
        check_packed_matches_unbatched(UnpackedClassifier(), padded(), LENGTHS)
    message = str(info.value)
    assert "example 1 (length 2, of time 4)" in message
    assert "example 2 (length 3, of time 4)" in message
    assert "example 0 " not in message  # full length: the same either way
    assert "at index (0, " in message and "largest |difference|" in message
    assert "last VALID step" in message


def test_per_step_outputs_are_compared_on_valid_steps_only():
    # A unidirectional model that ignores the lengths still gives the right outputs on the valid steps
    check_packed_matches_unbatched(UnpackedClassifier(), padded(), LENGTHS, output=lambda r: r[1])
    # ...a bidirectional one does not: the backward direction starts in the padding
    with pytest.raises(CheckFailed, match="compared on its valid steps"):
        check_packed_matches_unbatched(
            UnpackedClassifier(bidirectional=True), padded(), LENGTHS, output=lambda r: r[1]
        )


def test_hidden_state_output_with_its_batch_axis():
    def call(model, x, lengths):
        return model(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))

    x = padded()
    check_packed_matches_unbatched(
        PackedInput(), x, LENGTHS, call=call, output=lambda r: r[1], output_batch_axis=1
    )
    check_padding_invariance(PackedInput(), x, LENGTHS, call=call, output=lambda r: r[1], output_batch_axis=1)
    # the PackedSequence output itself, padded back by the default output selector
    check_packed_matches_unbatched(PackedInput(), x, LENGTHS, call=call)


def test_a_wrong_output_batch_axis_is_a_clear_error():
    def call(model, x, lengths):
        return model(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))

    with pytest.raises(ValueError, match="no batch of 3 along output_batch_axis=0"):
        check_packed_matches_unbatched(PackedInput(), padded(), LENGTHS, call=call, output=lambda r: r[1])


def test_padding_invariance_passes_on_a_packing_model():
    check_padding_invariance(PackedClassifier(), padded(), LENGTHS)
    check_padding_invariance(PackedClassifier(), padded(), LENGTHS, output=lambda r: r[1], extra=2)


def test_padding_invariance_names_the_variant_and_example():
    with pytest.raises(CheckFailed, match=r"padding changes the results") as info:
        check_padding_invariance(UnpackedClassifier(), padded(), LENGTHS)
    message = str(info.value)
    assert "[3 more padding steps of value 0 (time 4 -> 7)] example 0 (length 4)" in message
    assert "[the existing padding overwritten with random values] example 1 (length 2)" in message
    # example 0 has no padding to scramble
    assert "[the existing padding overwritten with random values] example 0" not in message


def test_padding_invariance_of_time_first_integer_inputs():
    class TimeFirstTokens(EmbedTagger):
        def forward(self, tokens):  # tokens: time batch
            return super().forward(tokens.t()).transpose(0, 1)

    x = tokens(batch=3, time=5).t()
    lengths = torch.tensor([5, 3, 4])
    # per-step outputs of a unidirectional model on valid steps: unaffected by padding
    check_padding_invariance(
        TimeFirstTokens(), x, lengths, batch_axis=1, time_axis=0, call=lambda m, x, lengths: m(x)
    )
    with pytest.raises(CheckFailed, match="random values"):
        check_padding_invariance(
            TimeFirstTokens(bidirectional=True),
            x,
            lengths,
            batch_axis=1,
            time_axis=0,
            call=lambda m, x, lengths: m(x),
        )


def test_bad_lengths_are_refused():
    with pytest.raises(ValueError, match="lengths has 2 entries but x"):
        check_padding_invariance(PackedClassifier(), padded(), torch.tensor([4, 2]))
    with pytest.raises(
        ValueError, match=r"lengths must be in 1..time=4; these are not \(example, length\): \[\(1, 5\)\]"
    ):
        check_packed_matches_unbatched(PackedClassifier(), padded(), torch.tensor([4, 5, 3]))
    assert H_IN == padded().shape[-1]


class PadByValue(torch.nn.Module):
    """Finds its padding by value (token 0), as many models do: right for padding of 0, whatever else is there."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(20, 6, padding_idx=0)
        self.rnn = torch.nn.GRU(6, 8, batch_first=True)

    def forward(self, x):
        packed = pack_padded_sequence(self.emb(x), (x != 0).sum(1), batch_first=True, enforce_sorted=False)
        return self.rnn(packed)[1][-1]


def test_a_model_that_finds_padding_by_value_is_told_about_scramble():
    x = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0], [8, 9, 1, 2]])
    lengths = torch.tensor([3, 2, 4])
    torch.manual_seed(0)
    model, call = PadByValue(), (lambda m, x, lengths: m(x))
    check_padding_invariance(model, x, lengths, call=call, scramble=False)  # what it promises
    with pytest.raises(
        CheckFailed, match=r"(?s)only overwriting the padding with other token values.*scramble=False"
    ):
        check_padding_invariance(model, x, lengths, call=call)


class MeanPool(torch.nn.Module):
    """Packs, pads back, then averages over the padded time axis: every result is divided by the padded length."""

    def __init__(self, total_length: bool):
        super().__init__()
        self.total_length = total_length
        self.gru, self.head = torch.nn.GRU(H_IN, 4, batch_first=True), torch.nn.Linear(4, 2)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(
            self.gru(packed)[0], batch_first=True, total_length=x.shape[1] if self.total_length else None
        )
        return self.head(out.mean(1))  # the bug: the mean counts the padded (zero) steps


@pytest.mark.parametrize("total_length", [False, True])
def test_a_mean_over_the_padded_time_axis_is_named_by_the_checks_that_see_it(total_length):
    x, lengths = features(batch=4, time=9), torch.tensor([9, 3, 5, 2])
    model = MeanPool(total_length)
    with pytest.raises(CheckFailed, match=r"out\.mean\(1\) counts the padded \(zero\) steps"):
        check_packed_matches_unbatched(model, x, lengths)
    if not total_length:  # padded back to the batch's longest length, more padding cannot change anything
        check_padding_invariance(model, x, lengths)
        return
    with pytest.raises(
        CheckFailed, match=r"only MORE padding changes the results(.|\n)*it counts the padded steps"
    ):
        check_padding_invariance(model, x, lengths)


class TimeLast(nn.Module):
    """DeepSpeech's interface, cut down: input (batch, 1, freq, time), output (batch, time, classes)."""

    def __init__(self):
        super().__init__()
        self.rnn, self.head = nn.GRU(4, 6, batch_first=True), nn.Linear(6, 5)

    def forward(self, x, lengths):
        seq = x.squeeze(1).transpose(1, 2)  # (batch, time, freq)
        out, _ = self.rnn(pack_padded_sequence(seq, lengths, batch_first=True, enforce_sorted=False))
        return self.head(pad_packed_sequence(out, batch_first=True, total_length=x.shape[-1])[0])


def test_auto_finds_an_output_time_axis_elsewhere_than_the_inputs():
    x, lengths = torch.randn(4, 1, 4, 9), torch.tensor([9, 7, 5, 3])
    check_packed_matches_unbatched(TimeLast().eval(), x, lengths, time_axis=3)  # output time axis 1, found


class MasksByValue(nn.Module):
    """A tagger padded back without total_length, its output masked where the ids are padding (words != 0)."""

    def __init__(self):
        super().__init__()
        self.emb, self.rnn, self.head = (
            nn.Embedding(30, 6, padding_idx=0),
            nn.LSTM(6, 5, batch_first=True),
            nn.Linear(5, 3),
        )

    def forward(self, words, lengths):
        out, _ = self.rnn(
            pack_padded_sequence(self.emb(words), lengths, batch_first=True, enforce_sorted=False)
        )
        out, _ = pad_packed_sequence(out, batch_first=True)
        return self.head(out) * (words[:, : out.shape[1]] != 0).unsqueeze(-1)


def test_an_output_padded_back_to_the_longest_length_is_compared_on_valid_steps():
    lengths = torch.tensor([3, 7, 5, 2])
    words = torch.randint(1, 30, (4, 7), generator=torch.Generator().manual_seed(0))
    for i, n in enumerate(lengths):
        words[i, n:] = 0
    check_padding_invariance(MasksByValue().eval(), words, lengths)  # the scrambled padding shows only there


class FixedMemory(nn.Module):
    """tacotron2's decoder, cut down: its padded input must be as long as another input's (a fixed memory)."""

    def __init__(self):
        super().__init__()
        self.rnn, self.memory = nn.GRU(4, 6, batch_first=True), torch.zeros(1, 9, 6)

    def forward(self, x, lengths):
        out, _ = self.rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0] + self.memory


def test_a_model_that_cannot_take_more_padding_says_which_variant_and_extra_0_scrambles_only():
    x, lengths = torch.randn(3, 9, 4), torch.tensor([9, 5, 3])
    with pytest.raises(RuntimeError) as info:
        check_padding_invariance(FixedMemory().eval(), x, lengths)
    assert "the model raised on the variant '3 more padding steps" in info.value.__notes__[0]
    assert "extra=0 tries the scrambled padding only" in info.value.__notes__[0]
    check_padding_invariance(FixedMemory().eval(), x, lengths, extra=0)
    with pytest.raises(ValueError, match="extra must be >= 1, or 0 with scramble=True"):
        check_padding_invariance(FixedMemory().eval(), x, lengths, extra=0, scramble=False)


def test_a_per_sequence_output_with_as_many_classes_as_steps_is_compared_whole():
    class LastPadded(nn.Module):  # reads the padding (output[:, -1]); 4 classes, 4 steps: a coincidence
        def __init__(self):
            super().__init__()
            self.rnn, self.head = nn.GRU(3, 5, batch_first=True), nn.Linear(5, 4)

        def forward(self, x, lengths):
            return self.head(self.rnn(x)[0][:, -1])

    torch.manual_seed(0)
    with pytest.raises(CheckFailed, match="on the whole per-example output"):
        check_padding_invariance(LastPadded(), torch.randn(3, 4, 3), torch.tensor([4, 2, 3]))


class ClassesBeforeTime(nn.Module):
    """A packed tagger whose output is (batch, classes, time), padded back with total_length."""

    def __init__(self, classes: int):
        super().__init__()
        self.rnn, self.head = nn.GRU(4, 6, batch_first=True), nn.Linear(6, classes)

    def forward(self, x, lengths):
        out, _ = self.rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        return self.head(pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]).transpose(
            1, 2
        )


def test_auto_finds_the_time_axis_after_a_class_axis_of_the_same_size():
    x = torch.randn(3, 6, 4)
    lengths = torch.tensor([5, 3, 2])  # 5 classes = the longest length, padded to 6
    check_packed_matches_unbatched(ClassesBeforeTime(5).eval(), x, lengths)
    x, lengths = torch.randn(3, 5, 4), torch.tensor([5, 3, 2])  # 5 classes = the padded time
    check_padding_invariance(ClassesBeforeTime(5).eval(), x, lengths)


class Strided(nn.Module):
    """A CTC-style front-end that halves the time (kernel 2, stride 2: no output step reads a step past the end
    of an even length), then a GRU over the packed steps; ``leaky``: a bidirectional GRU over the padded steps."""

    def __init__(self, leaky: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv1d(13, 16, kernel_size=2, stride=2)
        self.rnn = nn.GRU(16, 16, batch_first=True, bidirectional=leaky)
        self.fc = nn.Linear(32 if leaky else 16, 29)
        self.leaky = leaky

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2)).transpose(1, 2)  # (batch, time // 2, 16)
        if self.leaky:
            return self.fc(self.rnn(y)[0])
        packed = pack_padded_sequence(y, lengths // 2, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=y.shape[1])
        return self.fc(out)


def test_an_output_at_another_rate_is_compared_on_the_valid_steps_output_lengths_gives():
    torch.manual_seed(0)
    lengths = torch.tensor([60, 44, 36, 20, 58, 12])
    x = torch.randn(6, 60, 13)
    for i, n in enumerate(lengths):
        x[i, n:] = 0
    halved = {"output_lengths": lambda lengths: lengths // 2}
    check_padding_invariance(Strided(), x, lengths, **halved)
    check_packed_matches_unbatched(Strided(), x, lengths, **halved)
    # without output_lengths: a usage error that asks for them (it was a failure blaming the padding, a crash,
    # and advice to pass output_time_axis=1, which then blamed the batch)
    for check in (check_padding_invariance, check_packed_matches_unbatched):
        with pytest.raises(ValueError, match=r"the output's steps are not the input's .* output_lengths="):
            check(Strided(), x, lengths)
        with pytest.raises(ValueError, match=r"output_lengths=lambda lengths"):
            check(Strided(), x, lengths, output_time_axis=1)
    with pytest.raises(CheckFailed, match=r"padding changes the results"):
        check_padding_invariance(Strided(leaky=True), x, lengths, **halved)
    with pytest.raises(CheckFailed, match=r"packed/padded batch does not match unbatched runs"):
        check_packed_matches_unbatched(Strided(leaky=True), x, lengths, **halved)


def test_output_lengths_of_the_wrong_formula_names_the_example_and_the_formula():
    torch.manual_seed(0)
    lengths = torch.tensor([60, 45])  # the conv gives example 1 22 output steps; (45 + 1) // 2 says 23
    x = torch.randn(2, 60, 13)
    x[1, 45:] = 0
    with pytest.raises(
        ValueError, match=r"output_lengths gives example 1 23 valid output steps.*\(lengths - k\) // s \+ 1"
    ):
        check_packed_matches_unbatched(
            Strided(), x, lengths, output_lengths=lambda lengths: (lengths + 1) // 2
        )
