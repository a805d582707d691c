"""A user's own small RNN models tested with the rnnshapes fixtures (run by tests/plugin through pytester).

GoodTagger is correct; LeakyTagger turns a time-first GRU output into batch-first with .view instead of
.transpose (examples leak into each other); the bidirectional tagger is not causal; CourseHead classifies from
h_n[-1] of a bidirectional GRU (the course's 13_2 head: the forward direction never learns), yet trains.
"""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

INPUT, HIDDEN, CLASSES = 3, 5, 4


class GoodTagger(nn.Module):
    def __init__(self, bidirectional=False):
        super().__init__()
        self.rnn = nn.GRU(INPUT, HIDDEN, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(HIDDEN * (2 if bidirectional else 1), CLASSES)

    def forward(self, x):  # batch time input -> batch time classes
        return self.head(self.rnn(x)[0])


class LeakyTagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(INPUT, HIDDEN)  # time-first
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):
        batch, time, _ = x.shape
        out, _ = self.rnn(x.transpose(0, 1))
        return self.head(out.view(batch, time, -1))  # BUG: should be out.transpose(0, 1)


class CourseHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(INPUT, HIDDEN, batch_first=True, bidirectional=True)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):  # batch time input -> batch classes
        _, h_n = self.rnn(x)
        return self.head(h_n[-1])  # BUG: the backward direction only


MODELS = {
    "good": GoodTagger,
    "leaky": LeakyTagger,
    "bidirectional": lambda: GoodTagger(bidirectional=True),
}


@pytest.mark.parametrize("kind", ["good", "leaky"])
def test_batch_independence(rnn_checks, rnn_device, kind):
    model = MODELS[kind]().to(rnn_device)
    rnn_checks.check_batch_independence(model, rnn_checks.to_device(torch.randn(3, 4, INPUT)))


@pytest.mark.parametrize("kind", ["good", "bidirectional"])
def test_causal(rnn_checks, rnn_device, kind):
    model = MODELS[kind]().to(rnn_device)
    rnn_checks.check_causal(model, rnn_checks.to_device(torch.randn(3, 4, INPUT)), time_axis=1)


@pytest.mark.rnnshapes_convergence
def test_good_model_overfits(rnn_checks, rnn_device, rnn_threads):
    x = rnn_checks.to_device(torch.randn(4, 5, INPUT))
    y = torch.arange(4, device=rnn_device)
    rnn_checks.check_overfits_batch(
        GoodTagger().to(rnn_device), x, y, lambda out, y: F.cross_entropy(out[:, -1], y), steps=300, lr=0.05
    )


@pytest.mark.rnnshapes_convergence
def test_budget_too_small(rnn_checks, rnn_device):
    model = CourseHead().to(rnn_device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = rnn_checks.to_device(torch.randn(4, 5, INPUT)), torch.arange(4, device=rnn_device)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    rnn_checks.check_converges(step, None, 1e-6, max_steps=15, mode="<=", name="tiny-budget", model=model)


def test_course_head_overfits_with_half_a_layer_idle(rnn_checks):
    x, y = torch.randn(4, 5, INPUT), torch.arange(4)
    result = rnn_checks.check_overfits_batch(CourseHead(), x, y, F.cross_entropy, steps=300, lr=0.05)
    assert result.reached and len(result.no_gradient) == 4  # passes, and says what never learned


def test_a_batch_of_one_proves_nothing(rnn_checks):
    rnn_checks.check_batch_independence(GoodTagger(), torch.randn(1, 4, INPUT))  # a VacuousCheckWarning


def test_device_parity(rnn_checks):
    rnn_checks.check_device_parity(GoodTagger(), torch.randn(2, 3, INPUT))


@pytest.mark.rnnshapes_cuda
def test_needs_cuda():
    assert torch.cuda.is_available()


def test_fixtures(rnn_device, rnn_seed, rnn_threads, rnn_budget, rnn_train_record):
    assert rnn_device in ("cpu", "cuda")
    assert torch.get_num_threads() == rnn_threads
    print(f"seed={rnn_seed} budget={rnn_budget.name}")
    rnn_train_record(name="manual", steps=10, seconds=0.25, metric=0.9, target=0.8, reached=True)


@pytest.mark.parametrize("n", [1, 2])
def test_session_fixture_is_recorded_once(trained_once, n):
    assert trained_once == 42
