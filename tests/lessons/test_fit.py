"""fit(): early stop at the target, the step budget, the NaN guard, the curve, threads restored."""

import itertools

import pytest
import torch
from torch import nn

from rnnshapes import TrainingError
from rnnshapes.train import Budget, Target, fit


def _problem(nan_at: int | None = None):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    calls = itertools.count(1)

    def loss_fn(m, _):
        loss = (m(x).squeeze(-1) - y).pow(2).mean()
        return loss * float("nan") if next(calls) == nan_at else loss

    def evaluate(m):
        return {"loss": float((m(x).squeeze(-1) - y).pow(2).mean())}

    return model, loss_fn, evaluate


def test_stops_at_the_target_and_keeps_the_curve():
    model, loss_fn, evaluate = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = fit(model, itertools.repeat(None), loss_fn, evaluate, Target("loss", 0.01, "min"),
                 Budget(max_steps=500, eval_every=5, eval_from=20), optimizer=opt)  # fmt: skip
    assert result.reached and result.steps < 500 and result.steps % 5 == 0
    assert result.final["loss"] <= 0.01
    assert [p.step for p in result.curve] == list(range(5, result.steps + 1, 5))
    assert all(p.metrics == {} for p in result.curve if p.step < 20)  # before eval_from: loss only
    assert all("loss" in p.metrics for p in result.curve if p.step >= 20)


def test_budget_runs_out_without_reaching():
    model, loss_fn, evaluate = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    result = fit(model, itertools.repeat(None), loss_fn, evaluate, Target("loss", 1e-6, "min"),
                 Budget(max_steps=7, eval_every=5), optimizer=opt)  # fmt: skip
    assert not result.reached and result.steps == 7
    assert [p.step for p in result.curve] == [5, 7]  # the last step is always evaluated


def test_nan_loss_stops_with_the_step_it_appeared_at_and_threads_are_restored():
    before = torch.get_num_threads()
    model, loss_fn, evaluate = _problem(nan_at=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(
        TrainingError, match=r"the training loss became nan at step 3 .*Lower the learning rate"
    ):
        fit(model, itertools.repeat(None), loss_fn, evaluate, Target("loss", 0.0, "min"),
            Budget(max_steps=50, eval_every=5), optimizer=opt, threads=2)  # fmt: skip
    assert torch.get_num_threads() == before
