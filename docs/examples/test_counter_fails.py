"""Fails on purpose: the pytest-plugin page of the docs runs it to show a real failure report."""

import torch
from torch import nn


class Counter(nn.Module):
    """Counts the positive steps of a sequence: x (batch, time, 1) -> scores (batch, time + 1)."""

    def __init__(self, time=8, hidden=4):
        super().__init__()
        self.rnn = nn.GRU(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, time + 1)

    def forward(self, x):
        _, h_n = self.rnn(x)  # h_n: (1, batch, hidden)
        return self.head(h_n[-1])


def batch(n, time=8):
    x = torch.randn(n, time, 1)
    return x, (x[..., 0] > 0).sum(1)  # how many steps are positive: 0 ... time


def test_counts_positive_steps(rnn_checks):
    model, (x_test, y_test) = Counter(), batch(256)

    def train_step():  # one step of plain gradient descent
        x, y = batch(32)
        loss = nn.functional.cross_entropy(model(x), y)
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.5 * p.grad
        return loss

    def accuracy():
        with torch.no_grad():
            return (model(x_test).argmax(-1) == y_test).float().mean()

    rnn_checks.check_converges(train_step, accuracy, 0.9, max_steps=30, eval_every=5)
