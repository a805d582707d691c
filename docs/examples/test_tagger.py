"""A user's tests of a small GRU tagger, written with the rnnshapes pytest plugin's fixtures."""

import torch
from torch import nn


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(5, 7, batch_first=True)
        self.head = nn.Linear(7, 3)

    def forward(self, x):  # x: (batch, time, input)
        output, _ = self.rnn(x)
        return self.head(output)  # (batch, time, classes)


def test_examples_stay_apart(rnn_checks, rnn_device):
    model = Tagger().to(rnn_device)
    x = rnn_checks.to_device(torch.randn(4, 6, 5))  # batch=4, time=6, input=5
    rnn_checks.check_batch_independence(model, x)


def test_no_peeking_ahead(rnn_checks):
    rnn_checks.check_causal(Tagger(), torch.randn(4, 6, 5), time_axis=1)


def test_memorises_one_batch(rnn_checks, rnn_threads):  # rnn_threads: one CPU thread while it trains
    x, y = torch.randn(8, 6, 5), torch.randint(0, 3, (8, 6))

    def loss(logits, y):
        return nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())

    rnn_checks.check_overfits_batch(Tagger(), x, y, loss, steps=500, lr=0.03)
