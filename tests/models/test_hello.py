"""HelloRNN and HelloEmbedding (lessons 12_2-12_4): shapes, step == sequence, and the lesson itself."""

import pytest
import torch
from torch.nn.functional import cross_entropy, one_hot
from torch.testing import assert_close

from rnnshapes.models import HelloEmbedding, HelloRNN

HIHELL = [0, 1, 0, 2, 3, 3]  # h i h e l l over the symbols h, i, e, l, o
IHELLO = [1, 0, 2, 3, 3, 4]


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize(("batch", "time"), [(1, 1), (1, 6), (4, 3), (7, 9)])
def test_hello_rnn_shapes(batch_first: bool, batch: int, time: int) -> None:
    model = HelloRNN(input=5, hidden=7, classes=3, batch_first=batch_first)
    lead = (batch, time) if batch_first else (time, batch)
    logits, h_n = model(torch.randn(*lead, 5))
    assert logits.shape == (*lead, 3)
    assert h_n.shape == (1, batch, 7)
    logits_t, h_t = model.step(torch.randn(batch, 5), h_n)
    assert logits_t.shape == (batch, 3)
    assert h_t.shape == (1, batch, 7)


@pytest.mark.parametrize("batch_first", [True, False])
def test_step_by_step_equals_the_whole_sequence(batch_first: bool) -> None:
    model = HelloRNN(hidden=6, batch_first=batch_first)
    batch, time = 3, 6
    x = one_hot(torch.randint(0, 5, (batch, time)), 5).float()  # (batch, time, input)
    h_0 = torch.randn(1, batch, 6)
    whole, h_whole = model(x if batch_first else x.transpose(0, 1), h_0)
    if not batch_first:
        whole = whole.transpose(0, 1)  # (time, batch, classes) -> (batch, time, classes)

    hidden = h_0
    steps = []
    for t in range(time):
        logits_t, hidden = model.step(x[:, t], hidden)  # (batch, classes)
        steps.append(logits_t)
    assert_close(torch.stack(steps, dim=1), whole)  # (batch, time, classes)
    assert_close(hidden, h_whole)


def test_step_starts_from_zeros_without_a_hidden_state() -> None:
    model = HelloRNN()
    x_t = torch.eye(5)[:2]  # (batch=2, input)
    assert_close(model.step(x_t, None), model.step(x_t, torch.zeros(1, 2, 5)))


def _train(model: torch.nn.Module, x: torch.Tensor, steps: int = 100) -> tuple[float, list[int]]:
    target = torch.tensor(IHELLO)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(steps):
        logits, _ = model(x)  # (batch=1, time, classes)
        loss = cross_entropy(logits[0], target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item(), logits[0].argmax(-1).tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hello_rnn_learns_ihello_below_the_tanh_floor(seed: int) -> None:
    # The course reads logits off tanh outputs, which caps them at [-1, 1]: cross-entropy >= log(1 + 4/e^2).
    tanh_floor = torch.log(torch.tensor(1 + 4 / torch.e**2)).item()
    torch.manual_seed(seed)
    loss, predicted = _train(HelloRNN(), one_hot(torch.tensor([HIHELL]), 5).float())
    assert predicted == IHELLO
    assert loss < tanh_floor / 10


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize(("batch", "time"), [(1, 6), (5, 2), (2, 11)])
def test_hello_embedding_shapes_for_any_batch_and_length(batch_first: bool, batch: int, time: int) -> None:
    model = HelloEmbedding(vocab=7, embed=4, hidden=9, classes=6, batch_first=batch_first)
    lead = (batch, time) if batch_first else (time, batch)
    logits, h_n = model(torch.randint(0, 7, lead))
    assert logits.shape == (*lead, 6)
    assert h_n.shape == (1, batch, 9)


def test_hello_embedding_learns_ihello() -> None:
    loss, predicted = _train(HelloEmbedding(), torch.tensor([HIHELL]))
    assert predicted == IHELLO
    assert loss < 0.05
