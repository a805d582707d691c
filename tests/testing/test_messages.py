"""What every check says beyond pass/fail: a VacuousCheckWarning when it proved nothing, and failures that fit
on a screen (about 25 lines, the hint under the title, the worst differences in full and the rest counted)."""

import warnings

import pytest
import torch
from rnn_zoo import (
    VACUOUS_BATCH,
    VACUOUS_LENGTHS,
    VACUOUS_STEPS,
    ConvGRUTagger,
    CourseBiGRUHead,
    PackedClassifier,
    Tagger,
    UnpackedClassifier,
    ViewLeakTagger,
    features,
    tokens,
)
from torch import nn

from rnnshapes.testing import (
    CheckFailed,
    VacuousCheckWarning,
    check_batch_independence,
    check_causal,
    check_device_parity,
    check_every_parameter_learns,
    check_packed_matches_unbatched,
    check_padding_invariance,
    check_state_dict_roundtrip,
)

LENGTHS = torch.tensor([4, 2, 3])


def padded(batch=3, time=4, lengths=LENGTHS):
    x = features(batch, time)
    steps = torch.arange(time).view(1, -1, 1)
    return torch.where(steps < lengths.view(-1, 1, 1), x, torch.zeros(()))


def test_vacuous_checks_pass_with_a_warning_that_says_why():
    with pytest.warns(
        VacuousCheckWarning,
        match=r"^check_batch_independence: the batch holds 1 example, so no other example can leak into it: "
        r"the check proved nothing\. Pass a batch of 3 or more",
    ):
        check_batch_independence(Tagger(), VACUOUS_BATCH)
    with pytest.warns(
        VacuousCheckWarning,
        match=r"^check_causal: the sequence has 1 time step, so there is no later step to peek at: the check "
        r"proved nothing",
    ):
        check_causal(Tagger(), VACUOUS_STEPS)
    with pytest.warns(
        VacuousCheckWarning,
        match=r"^check_packed_matches_unbatched: every length equals the padded time 4, so the batch holds no "
        r"padding that could leak into a result",
    ):
        check_packed_matches_unbatched(PackedClassifier(), features(), VACUOUS_LENGTHS)
    with pytest.warns(
        VacuousCheckWarning,
        match=r"^check_padding_invariance: every length equals the padded time 4, so there was no padding to "
        r"overwrite: only 3 appended steps were tried",
    ):
        check_padding_invariance(PackedClassifier(), features(), VACUOUS_LENGTHS)

    def same_seed():
        torch.manual_seed(1)
        return Tagger()

    with pytest.warns(
        VacuousCheckWarning, match=r"^check_state_dict_roundtrip: make_model\(\) built a model"
    ):
        check_state_dict_roundtrip(same_seed(), same_seed, features())


def test_the_warning_is_a_user_warning_that_points_at_the_callers_line():
    assert issubclass(VacuousCheckWarning, UserWarning)
    assert VacuousCheckWarning.__module__ == "rnnshapes.testing"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_batch_independence(Tagger(), VACUOUS_BATCH)
    assert [w.filename for w in caught] == [__file__]


def test_ci_can_make_a_vacuous_check_an_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error", VacuousCheckWarning)
        with pytest.raises(VacuousCheckWarning):
            check_causal(Tagger(), VACUOUS_STEPS)


def test_checks_with_inputs_that_can_show_the_fault_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", VacuousCheckWarning)
        check_batch_independence(Tagger(), features(batch=2))
        check_causal(Tagger(), features(time=2))
        check_packed_matches_unbatched(PackedClassifier(), padded(), LENGTHS)
        check_padding_invariance(PackedClassifier(), padded(), LENGTHS)
        check_state_dict_roundtrip(Tagger(), Tagger, features())


def test_the_conv_before_gru_streaming_tagger():
    x = features(batch=3, time=9)
    check_causal(ConvGRUTagger(causal=True), x)
    check_batch_independence(ConvGRUTagger(causal=True), x)
    with pytest.raises(CheckFailed, match=r"causality failed"):
        check_causal(ConvGRUTagger(causal=False, kernel=5), x)
    # the leak is a band: each step sees kernel // 2 = 2 steps ahead, no further
    model, leaf = ConvGRUTagger(causal=False, kernel=5), x.clone().requires_grad_(True)
    out = model(leaf)
    ahead = set()
    for t in range(9):
        (grad,) = torch.autograd.grad(out[:, t].sum(), leaf, retain_graph=True)
        ahead |= {(t, s) for s in range(t + 1, 9) if grad[:, s].abs().max() > 0}
    assert ahead == {(t, t + k) for t in range(9) for k in (1, 2) if t + k < 9}


class Drifting(nn.Module):
    """Another result in each copy (the check runs one per device), in every output and every gradient, the
    same on every call of a copy (stands for device-dependent code)."""

    calls = 0

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(3, 8, num_layers=3, batch_first=True)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        if "factor" not in self.__dict__:  # a copy's first call: the check's second copy is the other device
            Drifting.calls += 1
            self.factor = 2.0 if Drifting.calls % 3 == 2 else 1.0
        out, h_n = self.rnn(x)
        return self.head(out) * self.factor, h_n * self.factor


def _failures():
    yield "padding invariance", lambda: check_padding_invariance(UnpackedClassifier(), padded(), LENGTHS)
    yield "packed", lambda: check_packed_matches_unbatched(UnpackedClassifier(), padded(), LENGTHS)
    yield "batch", lambda: check_batch_independence(ViewLeakTagger(), features(batch=8, time=6))
    yield "causal", lambda: check_causal(Tagger(bidirectional=True), features(time=12))
    yield (
        "parameters",
        lambda: check_every_parameter_learns(CourseBiGRUHead(), (tokens(), torch.tensor([4, 4, 4]))),
    )
    yield "parity", lambda: check_device_parity(Drifting(), features(batch=6, time=10), device="cpu")


@pytest.mark.parametrize("name, run", list(_failures()), ids=[n for n, _ in _failures()])
def test_every_failure_fits_on_a_screen_with_the_hint_near_the_top(name, run):
    with pytest.raises(CheckFailed) as info:
        run()
    lines = str(info.value).splitlines()
    assert len(lines) <= 25, "\n".join(lines)
    assert any(line.startswith("hint: ") for line in lines[:3]), "\n".join(lines)


def test_long_tables_show_the_worst_and_count_the_rest():
    with pytest.raises(
        CheckFailed,
        match=r"padding changes the results: 5 of 6 \(variant, example\) pairs differ\.\nhint: the model reads "
        r"padded steps(.|\n)*\n\.\.\. and 2 more pairs \(largest \|difference\|\): \[3 more padding steps of "
        r"value 0\] example \d \([\d.e-]+\), \[3 more padding steps of value 0\] example \d \([\d.e-]+\)$",
    ):
        check_padding_invariance(UnpackedClassifier(), padded(), LENGTHS)
    with pytest.raises(
        CheckFailed,
        match=r"device parity failed: cpu and cpu disagree \(TF32 off\) in \d+ tensors\.(.|\n)*\nresult\[0\]:\n"
        r"(.|\n)*\n\.\.\. and \d+ more tensors \(largest \|difference\|\): grad of ",
    ):
        check_device_parity(Drifting(), features(batch=6, time=10), device="cpu")
