"""cell_tour (lesson 12_1): the shapes it reports are the ones torch.nn.RNN/GRU/LSTM document."""

import dataclasses

import pytest
import torch
from torch import nn

from rnnshapes.models import CellShapes, cell_tour
from rnnshapes.models._cells import TOUR_HIDDEN, TOUR_INPUT, TOUR_WORDS, one_hot_words

CASES = {"one char": (1, 1), "one word": (1, len("hello")), "three words": (len(TOUR_WORDS), len("hello"))}


def test_tour_covers_every_cell_layout_and_case_once() -> None:
    rows = cell_tour()
    keys = [(r.cell, r.batch_first, r.case) for r in rows]
    assert len(keys) == len(set(keys)) == 3 * 2 * 3
    assert {r.cell for r in rows} == {"RNN", "GRU", "LSTM"}
    assert {r.case for r in rows} == set(CASES)


def test_rows_have_the_shapes_torch_documents() -> None:
    # torch.nn.RNN docs: input (N, L, H_in) if batch_first else (L, N, H_in); output (N, L, D*H_out) / (L, N,
    # D*H_out); h_n (D*num_layers, N, H_out) whatever batch_first is; LSTM c_n (D*num_layers, N, H_cell).
    d, layers = 1, 1
    for row in cell_tour():
        batch, time = CASES[row.case]
        assert (row.batch, row.time) == (batch, time), row
        lead = (batch, time) if row.batch_first else (time, batch)
        assert row.input == (*lead, TOUR_INPUT), row
        assert row.output == (*lead, d * TOUR_HIDDEN), row
        assert row.hidden == (d * layers, batch, TOUR_HIDDEN), row
        if row.cell == "LSTM":
            assert row.cell_state == (d * layers, batch, TOUR_HIDDEN), row
        else:
            assert row.cell_state is None, row


def test_tour_is_deterministic_and_leaves_the_global_random_state_alone() -> None:
    before = torch.random.get_rng_state()
    first = cell_tour(seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert first == cell_tour(seed=1) == cell_tour(seed=2)  # shapes never depend on the seed
    assert all(isinstance(r, CellShapes) for r in first)
    assert set(dataclasses.asdict(first[0])) >= {"cell", "batch_first", "case", "input", "output", "hidden"}


def test_one_hot_words_encodes_hello_over_helo() -> None:
    words = one_hot_words(("hello",))  # (1, 5, 4)
    assert words.shape == (1, 5, TOUR_INPUT)
    assert words.sum(-1).eq(1).all()
    assert words[0].argmax(-1).tolist() == [0, 1, 2, 2, 3]  # h e l l o


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_one_char_at_a_time_equals_the_whole_word_from_the_same_state(name: str, batch_first: bool) -> None:
    torch.manual_seed(0)
    cell = {"RNN": nn.RNN, "GRU": nn.GRU, "LSTM": nn.LSTM}[name](4, 2, batch_first=batch_first)
    words = one_hot_words()  # (batch=3, time=5, input=4)
    h0 = torch.randn(1, 3, 2)
    start = (h0, torch.randn(1, 3, 2)) if name == "LSTM" else h0
    time_axis = 1 if batch_first else 0
    x = words if batch_first else words.transpose(0, 1)  # (batch, time, input) or (time, batch, input)
    whole, whole_state = cell(x, start)
    state, steps = start, []
    for t in range(x.shape[time_axis]):
        out, state = cell(x.narrow(time_axis, t, 1), state)  # one step: time = 1
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, dim=time_axis), whole)
    torch.testing.assert_close(state, whole_state)  # h_n, or the pair (h_n, c_n)
