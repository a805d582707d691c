"""check_every_parameter_learns, and the training checks reporting parameters that never learned."""

import re

import pytest
import torch
from rnn_zoo import CLASSES, H_IN, HIDDEN, VOCAB, CourseBiGRUHead, PackedClassifier, Tagger, features, tokens
from torch import nn
from torch.nn import functional as F

import rnnshapes.testing
from rnnshapes.models import CharRNN, HelloEmbedding, HelloRNN, NamesClassifier, PackedEncoder
from rnnshapes.testing import CheckFailed, check_converges, check_every_parameter_learns, check_overfits_batch

LENGTHS = torch.tensor([4, 2, 3])


def names_batch():
    x = tokens(batch=3, time=4)
    x[1, 2:] = 0
    x[2, 3:] = 0
    return x, LENGTHS


@pytest.mark.parametrize(
    "model, inputs",
    [
        (HelloRNN(), torch.randn(3, 6, 5)),
        (HelloRNN(batch_first=False), torch.randn(6, 3, 5)),
        (HelloEmbedding(), torch.randint(0, 5, (3, 6))),
        (NamesClassifier(vocab=VOCAB, embed=4, hidden=5, classes=CLASSES), names_batch()),
        (NamesClassifier(vocab=VOCAB, embed=4, hidden=5, layers=1, bidirectional=False), names_batch()),
        (NamesClassifier(cell="lstm", vocab=VOCAB, embed=4, hidden=5, layers=3), names_batch()),
        (CharRNN(embed=4, hidden=5, layers=2), torch.randint(0, 50, (3, 6))),
        (PackedEncoder(layers=2, bidirectional=True), (features(), LENGTHS)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "",
)
def test_every_lesson_model_passes(model, inputs):
    sizes = check_every_parameter_learns(model, inputs)
    assert set(sizes) == {n for n, _ in model.named_parameters()}
    assert min(sizes.values()) > 0


def test_the_course_13_2_head_fails_with_the_layer_direction_and_cause():
    model = CourseBiGRUHead()
    with pytest.raises(
        CheckFailed,
        match=r"^every parameter learns failed: 4 of 19 parameters get no gradient \(\d+ of \d+ values, \d+%\), "
        r"so they never learn\.\n"
        r"hint: h_n\[-1\] of a bidirectional GRU is only the BACKWARD direction of its last layer ",
    ) as info:
        check_every_parameter_learns(model, names_batch())
    message = str(info.value)
    assert (
        "\n  rnn (GRU) layer 1, forward direction: weight_ih_l1, weight_hh_l1, bias_ih_l1, bias_hh_l1 "
        "(zero gradient)" in message
    )
    assert "torch.cat([h_n[-2], h_n[-1]], dim=-1)" in message
    assert len(message.splitlines()) <= 25
    assert all(p.grad is None for p in model.parameters())  # the model's .grad fields are left alone


def test_the_last_output_step_of_a_bidirectional_layer_starves_its_backward_recurrence():
    class LastStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True, bidirectional=True)
            self.head = nn.Linear(2 * HIDDEN, CLASSES)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    with pytest.raises(
        CheckFailed,
        match=r"\nhint: out\[:, -1\] of a bidirectional GRU: at the last step the backward direction has read "
        r"that one step only(.|\n)*\n  rnn \(GRU\) layer 0, backward direction: weight_hh_l0_reverse "
        r"\(zero gradient\)$",
    ):
        check_every_parameter_learns(LastStep(), features())


class WithExtra(Tagger):
    """Tagger plus a GRU that forward never calls (``unused``) or whose output it detaches (``detached``)."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.extra = nn.GRU(H_IN, HIDDEN, batch_first=True)

    def forward(self, x):
        out, h_n = super().forward(x)
        if self.how == "detached":
            out = out + self.extra(x)[0].detach().sum(-1, keepdim=True)
        return out, h_n


def test_an_unused_submodule_is_named_as_a_whole():
    with pytest.raises(
        CheckFailed,
        match=r"\nhint: an unused submodule: extra never ran in this call of the model(.|\n)*\n  extra \(GRU\): "
        r"weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, all of its parameters \(no gradient\)$",
    ):
        check_every_parameter_learns(WithExtra("unused"), features())


def test_a_detached_branch_is_told_apart_from_an_unused_module():
    with pytest.raises(
        CheckFailed, match=r"\nhint: a detached branch: extra ran, but its output does not reach"
    ):
        check_every_parameter_learns(WithExtra("detached"), features())


def test_a_dead_bias_alone_and_frozen_parameters():
    class ZeroedBias(Tagger):
        def forward(self, x):
            out, h_n = super().forward(x)
            return out - self.head.bias, h_n  # cancels the bias: its gradient is exactly zero

    with pytest.raises(CheckFailed, match=r"\n  head \(Linear\): bias \(zero gradient\)$"):
        check_every_parameter_learns(ZeroedBias(), features())
    model = ZeroedBias()
    model.head.bias.requires_grad_(False)  # frozen on purpose: not checked
    check_every_parameter_learns(model, features())
    with pytest.raises(CheckFailed, match="no trainable parameters"):
        check_every_parameter_learns(Tagger().requires_grad_(False), features())


def test_a_loss_of_the_users_own_and_a_detached_output():
    y = torch.randint(0, CLASSES, (3,))
    check_every_parameter_learns(
        PackedClassifier(), (features(), LENGTHS), loss=lambda o: F.cross_entropy(o, y)
    )
    with pytest.raises(CheckFailed, match=r"the output does not depend on any parameter"):
        check_every_parameter_learns(Tagger(), features(), output=lambda r: r[0].detach())


def test_the_training_checks_report_parameters_that_never_learned_when_they_pass():
    x, y = names_batch(), torch.tensor([0, 1, 2])
    result = check_overfits_batch(CourseBiGRUHead(), x, y, F.cross_entropy, steps=300, lr=0.05)
    assert result.reached  # the bug trains: only the parameters say it
    assert result.no_gradient == ["rnn.weight_ih_l1", "rnn.weight_hh_l1", "rnn.bias_ih_l1", "rnn.bias_hh_l1"]
    assert result.no_gradient_groups == [
        "rnn (GRU) layer 1, forward direction: weight_ih_l1, weight_hh_l1, bias_ih_l1, bias_hh_l1"
    ]
    assert result.as_record()["no_gradient"] == result.no_gradient_groups
    assert re.search(
        r"\n4 parameters never received a non-zero gradient \(never learned\):\n  rnn \(GRU\) layer 1, forward "
        r"direction: weight_ih_l1, weight_hh_l1, bias_ih_l1, bias_hh_l1$",
        result.summary(),
    )


def test_check_converges_watches_the_model_it_is_given():
    model = CourseBiGRUHead()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x, y = names_batch(), torch.tensor([0, 1, 2])

    def step():
        loss = F.cross_entropy(model(*x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        opt.zero_grad()  # .grad cleared after the step: the watch sees the gradients as backward makes them
        return loss

    result = check_converges(step, None, 10.0, max_steps=3, mode="<=", model=model)
    assert result.watched and len(result.no_gradient) == 4
    unwatched = check_converges(step, None, 10.0, max_steps=1, mode="<=")
    assert (
        not unwatched.watched and unwatched.no_gradient == [] and unwatched.as_record()["no_gradient"] is None
    )
    assert all(not p._backward_hooks for p in model.parameters())  # the hooks are removed after


@pytest.mark.parametrize(
    "model, x",
    [
        (nn.GRU(H_IN, HIDDEN, batch_first=True), features(time=1)),
        (nn.LSTM(H_IN, HIDDEN, num_layers=2, bidirectional=True), features(time=1).transpose(0, 1)),
        (nn.GRUCell(H_IN, HIDDEN), features(time=1)[:, 0]),
    ],
    ids=["gru", "lstm-2-layers-bidirectional", "gru-cell"],
)
def test_one_step_from_a_zero_state_is_vacuous_for_the_hidden_weights_not_a_failure(model, x):
    """h0 = 0 multiplies weight_hh: one step gives it no gradient in a correct model (a stranger test found this
    false alarm); the check says so and judges every other parameter."""
    from rnnshapes.testing import VacuousCheckWarning

    with pytest.warns(VacuousCheckWarning, match=r"ran one step from a zero state, so weight_hh"):
        sizes = check_every_parameter_learns(model, x)
    assert all(v > 0 for n, v in sizes.items() if "weight_hh" not in n)


def test_one_step_still_fails_what_one_step_can_show():
    class LastOfBidirectional(nn.Module):  # h_n[-1]: the backward direction only
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(H_IN, HIDDEN, bidirectional=True, batch_first=True)
            self.head = nn.Linear(HIDDEN, CLASSES)

        def forward(self, x):
            return self.head(self.rnn(x)[1][-1])

    with pytest.warns(Warning), pytest.raises(CheckFailed, match=r"rnn \(GRU\) layer 0, forward direction"):
        check_every_parameter_learns(LastOfBidirectional(), features(time=1))


def test_a_head_that_feeds_another_output_is_named_with_the_way_to_cover_it():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True)
            self.head, self.aux = nn.Linear(HIDDEN, CLASSES), nn.Linear(HIDDEN, 1)

        def forward(self, x):
            out, h_n = self.rnn(x)
            return {"logits": self.head(out), "value": self.aux(h_n[-1])}

    with pytest.raises(
        CheckFailed, match=r"(?s)or they feed another tensor of the result \(result\['logits'\], "
    ):
        check_every_parameter_learns(TwoHeads(), features())
    check_every_parameter_learns(
        TwoHeads(), features(), output=lambda r: r["logits"].sum() + r["value"].sum()
    )


def test_the_check_puts_back_the_running_statistics_its_own_forward_moved():
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model.eval()
    x = torch.randn(8, 5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check_every_parameter_learns(model, x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


@pytest.mark.parametrize(
    "check",
    [
        lambda m, x: check_every_parameter_learns(m, x),
        lambda m, x: rnnshapes.testing.check_batch_independence(m, x),
        lambda m, x: rnnshapes.testing.check_causal(m, x),
    ],
)
def test_meta_models_are_refused_with_what_to_do(check):
    model = nn.GRU(3, 4, batch_first=True).to("meta")
    with pytest.raises(ValueError, match=r"on the meta device, which holds shapes only: build the model"):
        check(model, torch.zeros(2, 5, 3, device="meta"))


def test_a_buffer_replaced_out_of_place_is_put_back_too():
    class Ema(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(5, 2)
            self.register_buffer("ema", torch.zeros(5))

        def forward(self, x):
            if self.training:
                self.ema = 0.9 * self.ema + 0.1 * x.mean(0).detach()  # a new tensor each call
            return self.lin(x - self.ema)

    model = Ema().eval()
    before = model.ema.clone()
    check_every_parameter_learns(model, torch.randn(8, 5))
    assert torch.equal(model.ema, before)


class ZeroHead(nn.Module):
    """A zero-initialised head: the GRU's gradient is exactly zero at init, and not after the first step."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(5, 8, batch_first=True)
        self.head = nn.Linear(8, 3)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


class ReZero(nn.Module):
    """A residual gate learned from 0 (ReZero, LayerScale-0): the GRU behind it gets no gradient at init."""

    def __init__(self, detach: bool = False) -> None:
        super().__init__()
        self.inp = nn.Linear(5, 8)
        self.rnn = nn.GRU(8, 8, batch_first=True)
        self.alpha = nn.Parameter(torch.zeros(1))
        self.head = nn.Linear(8, 3)
        self.detach = detach

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.inp(x)
        branch = self.rnn(z)[0]
        return self.head(z + self.alpha * (branch.detach() if self.detach else branch))


def test_a_parameter_blocked_only_by_a_zero_initialised_one_is_not_reported():
    x = torch.randn(4, 6, 5, generator=torch.Generator().manual_seed(0))
    for model in (ZeroHead(), ReZero()):
        sizes = check_every_parameter_learns(model, x)
        assert sizes["rnn.weight_ih_l0"] > 0  # zero at init, not a fault: the unblocked pass's value
        assert (
            not model.head.weight.any() if isinstance(model, ZeroHead) else not model.alpha.any()
        )  # untouched
    with pytest.raises(CheckFailed, match=r"(?s)a detached branch.*rnn \(GRU\): weight_ih_l0"):
        check_every_parameter_learns(ReZero(detach=True), x)  # a detached branch stays dead behind the gate


def test_a_model_that_cannot_be_copied_is_unblocked_in_place_and_left_as_it_was():
    model = ZeroHead()
    model.kept = None

    def forward(x: torch.Tensor) -> torch.Tensor:
        out = model.rnn(x)[0]
        model.kept = (
            out  # a non-leaf tensor kept on the module (for plotting): copy.deepcopy refuses the model
        )
        return model.head(out)

    model.forward = forward  # type: ignore[method-assign]
    check_every_parameter_learns(model, torch.randn(4, 6, 5))
    assert not model.head.weight.any() and not model.head.bias.any()  # zero again after the check
