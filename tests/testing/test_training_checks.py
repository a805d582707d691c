"""check_converges, check_overfits_batch, check_init_loss, and the sparkline they draw."""

import math

import pytest
import torch
from rnn_zoo import CLASSES, H_IN, HIDDEN, features
from torch import nn
from torch.nn import functional as F

from rnnshapes.testing import (
    CheckFailed,
    ConvergenceFailed,
    check_converges,
    check_init_loss,
    check_overfits_batch,
    sparkline,
)
from rnnshapes.testing._sparkline import BARS, describe_curve


class Classifier(nn.Module):
    """batch time input -> batch classes, from the last hidden state."""

    def __init__(self, softmax: bool = False, mean_over_batch: bool = False) -> None:
        super().__init__()
        self.softmax = softmax
        self.mean_over_batch = mean_over_batch
        self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):
        h = self.rnn(x)[1][-1]
        if self.mean_over_batch:  # BUG: every example gets the same prediction
            h = h.mean(dim=0, keepdim=True).expand_as(h)
        logits = self.head(h)
        return logits.softmax(dim=-1) if self.softmax else logits


TARGETS = torch.tensor([0, 1, 2, 3])


def test_sparkline_draws_min_to_max_and_marks_non_finite_values():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == BARS
    assert sparkline([3, 3, 3]) == BARS[3] * 3
    assert sparkline([0.0, math.nan, 1.0, math.inf]) == f"{BARS[0]}!{BARS[-1]}!"
    assert sparkline([]) == ""
    assert sparkline(range(200), width=10) == "▁▂▃▃▄▅▆▆▇█"
    assert sparkline([1, 2], ascii=True) == "_#"
    assert "0.1 -> 0.9 (min 0.1, max 0.9, 3 points)" in describe_curve([0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match="width must be >= 1"):
        sparkline([1], width=0)


def test_a_curve_flat_to_its_printed_digits_is_drawn_flat_not_as_a_slope():
    # lr 1e-6: the loss moves by 1e-5 of itself; the numbers print 1.139 -> 1.139, so must the picture
    assert sparkline([1.0, 1.000001, 1.000002]) == BARS[3] * 3
    assert sparkline([1.139 + 1e-5 * k for k in range(5)]) == BARS[3] * 5
    assert sparkline([1.0, 1.001]) == BARS[0] + BARS[-1]  # a change the digits show is drawn
    assert sparkline([0.001, 0.0005]) == BARS[-1] + BARS[0]  # small values: the spread is relative to them
    assert sparkline([-1e-3, 1e-3]) == BARS[0] + BARS[-1]


def test_check_converges_stops_at_the_target_and_returns_the_curve():
    state = {"x": 0.0}

    def step():
        state["x"] += 0.1
        return 1.0 - state["x"]

    result = check_converges(step, lambda: state["x"], 0.5, max_steps=100, eval_every=2, name="ramp")
    assert result.reached and result.stopped_by == "target"
    assert result.steps == 6  # evaluated at 2, 4, 6; 0.6 >= 0.5 at step 6 (0.4 at step 4)
    assert [s for s, _ in result.curve] == [2, 4, 6]
    assert len(result.losses) == 6
    assert result.as_record()["curve"] == pytest.approx([0.2, 0.4, 0.6])


def test_check_converges_failure_shows_the_curve_as_a_sparkline():
    values = iter([0.1, 0.2, 0.3, 0.35, 0.38, 0.4])
    with pytest.raises(ConvergenceFailed, match=r"slow did not converge: metric >= 0\.9 not reached") as info:
        check_converges(lambda: 1.0, lambda: next(values), 0.9, max_steps=6, name="slow")
    message = str(info.value)
    assert "metric: ▁▃▆▇██  0.1 -> 0.4" in message
    assert "best 0.4 at step 6" in message
    assert isinstance(info.value, AssertionError)
    assert info.value.result.steps == 6 and not info.value.result.reached


def test_check_converges_lower_is_better_and_non_finite_losses():
    losses = iter([3.0, 2.0, 1.0, 0.5])
    result = check_converges(lambda: next(losses), None, 0.6, max_steps=10, mode="<=")
    assert result.steps == 4 and result.metric == 0.5
    bad = iter([1.0, float("nan")])
    with pytest.raises(ConvergenceFailed, match=r"the loss became nan at step 2"):
        check_converges(lambda: next(bad), None, 0.1, max_steps=10, mode="<=")
    with pytest.raises(ValueError, match="mode must be"):
        check_converges(lambda: 1.0, None, 0.1, max_steps=1, mode=">")  # type: ignore[arg-type]


def test_check_converges_time_budget():
    with pytest.raises(ConvergenceFailed, match=r"within 1000000 steps / 0 s") as info:
        check_converges(lambda: 1.0, None, 0.0, max_steps=1_000_000, mode="<=", max_seconds=0.0)
    assert info.value.result.stopped_by == "time" and info.value.result.steps == 1


def test_a_correct_model_overfits_one_batch_without_touching_the_model():
    model = Classifier()
    before = [p.detach().clone() for p in model.parameters()]
    result = check_overfits_batch(model, features(batch=4), TARGETS, F.cross_entropy, steps=200, lr=0.05)
    assert result.reached and result.metric <= 0.05
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_a_model_that_predicts_the_same_for_every_example_cannot_overfit():
    with pytest.raises(
        ConvergenceFailed,
        match=r"overfit one batch failed: the loss did not fall to <= 0\.05 within 60 steps",
    ) as info:
        check_overfits_batch(
            Classifier(mean_over_batch=True), features(batch=4), TARGETS, F.cross_entropy, steps=60
        )
    assert "model Classifier on inputs tuple(Tensor(float32, shape (4, 4, 3)))" in str(info.value)
    assert "loss:" in str(info.value)


def test_parameters_that_never_get_a_gradient_are_named():
    class HalfDetached(Classifier):
        def forward(self, x):
            return self.head(self.rnn(x)[1][-1].detach() * 0)

    with pytest.raises(
        ConvergenceFailed,
        match=r"hint: part of the model never learned(.|\n)*these 5 parameters never received a non-zero "
        r"gradient:\n  rnn \(GRU\): weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, all of its parameters\n"
        r"  head \(Linear\): weight$",
    ) as info:
        check_overfits_batch(HalfDetached(), features(batch=4), TARGETS, F.cross_entropy, steps=20)
    assert info.value.result.no_gradient == [
        "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0", "head.weight"
    ]  # fmt: skip
    frozen = Classifier().requires_grad_(False)
    with pytest.raises(CheckFailed, match="no trainable parameters"):
        check_overfits_batch(frozen, features(batch=4), TARGETS, F.cross_entropy)


def test_init_loss_close_to_log_classes_for_a_fresh_classifier():
    loss = check_init_loss(Classifier(), features(batch=8), torch.arange(8) % CLASSES, CLASSES)
    assert abs(loss - math.log(CLASSES)) < 0.2 * math.log(CLASSES)


def test_an_over_confident_init_fails_with_the_ratio():
    model = Classifier()
    with torch.no_grad():
        model.head.weight.mul_(40)
        model.head.bias.copy_(torch.tensor([8.0, 0.0, 0.0, 0.0]))
    with pytest.raises(
        CheckFailed, match=r"loss at init is .* but about log\(classes\) = log\(4\) = 1\.386"
    ) as info:
        check_init_loss(model, features(batch=8), torch.arange(8) % CLASSES, CLASSES)
    assert "over-confident" in str(info.value)


def test_softmax_outputs_are_flagged_as_probabilities():
    with pytest.raises(CheckFailed, match="looks like probabilities, not logits"):
        check_init_loss(Classifier(softmax=True), features(batch=8), torch.arange(8) % CLASSES, CLASSES)
    # ...unless the caller says so
    check_init_loss(
        Classifier(softmax=True),
        features(batch=8),
        torch.arange(8) % CLASSES,
        CLASSES,
        allow_probabilities=True,
    )


def test_init_loss_per_step_outputs_and_a_wrong_class_axis():
    class PerStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True)
            self.head = nn.Linear(HIDDEN, CLASSES)

        def forward(self, x):
            return self.head(self.rnn(x)[0])  # batch time classes

    x = features(batch=3, time=5)
    targets = torch.randint(0, CLASSES, (3, 5), generator=torch.Generator().manual_seed(0))
    check_init_loss(PerStep(), x, targets, CLASSES)
    with pytest.raises(CheckFailed, match=r"has 5 along class_axis=1, but classes=4"):
        check_init_loss(PerStep(), x, targets, CLASSES, class_axis=1)
