"""Lesson 12_1: what goes into ``nn.RNN``, ``nn.GRU`` and ``nn.LSTM``, and what comes out.

:func:`cell_tour` replays the course's experiments on one-hot "hello" for all three cells and both layouts and
returns the shapes it observed, one :class:`CellShapes` row per experiment, for the docs to render as a table.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

# One-hot codes of the four symbols of "hello" (input size 4), as in the course.
HELLO_SYMBOLS = "helo"
TOUR_WORDS = ("hello", "eolll", "lleel")
TOUR_INPUT = len(HELLO_SYMBOLS)
TOUR_HIDDEN = 2

_CELLS: dict[str, Callable[..., nn.RNNBase]] = {"RNN": nn.RNN, "GRU": nn.GRU, "LSTM": nn.LSTM}


@dataclass(frozen=True)
class CellShapes:
    """One observed call of a recurrent layer: which layer, which experiment, and the shapes it saw.

    Attributes:
        cell: ``"RNN"``, ``"GRU"`` or ``"LSTM"``.
        batch_first: the layer's ``batch_first`` flag.
        case: ``"one char"`` (one time step of "hello", fed in a loop that carries the hidden state),
            ``"one word"`` (all five steps of "hello" at once) or ``"three words"`` ("hello", "eolll",
            "lleel" as a batch of 3).
        batch: N, the number of sequences in the call.
        time: L, the number of time steps in the call.
        input: shape of the input tensor, ``(N, L, H_in)`` if batch_first else ``(L, N, H_in)``.
        output: shape of ``output``, laid out like the input with ``D * H_out`` features.
        hidden: shape of ``h_n``, always ``(D * num_layers, N, H_out)``, whatever ``batch_first`` says.
        cell_state: shape of the LSTM's ``c_n``, ``(D * num_layers, N, H_cell)``; ``None`` for RNN and GRU.
    """

    cell: str
    batch_first: bool
    case: str
    batch: int
    time: int
    input: tuple[int, ...]
    output: tuple[int, ...]
    hidden: tuple[int, ...]
    cell_state: tuple[int, ...] | None


def one_hot_words(words: tuple[str, ...] = TOUR_WORDS) -> Tensor:
    """The words as one-hot vectors over ``"helo"``, batch first: shape ``(N, L, 4)``."""
    index = torch.tensor([[HELLO_SYMBOLS.index(c) for c in word] for word in words])  # (batch, time)
    return nn.functional.one_hot(index, num_classes=TOUR_INPUT).float()  # (batch, time, input)


def cell_tour(seed: int = 0) -> list[CellShapes]:
    """Run ``nn.RNN``, ``nn.GRU`` and ``nn.LSTM`` (``input_size=4, hidden_size=2``) on one-hot "hello".

    What the lesson teaches: a recurrent layer reads a sequence tensor whose two leading axes are
    ``batch time`` when ``batch_first=True`` and ``time batch`` otherwise, while the hidden state it takes and
    returns is **always** ``(D * num_layers, N, H_out)``. Feeding one character at a time (carrying the
    hidden state) and feeding the whole word at once give the same shapes per step; a batch of words only
    changes N. The LSTM additionally carries a cell state ``c`` of the same layout.

    For each cell and each layout three experiments are run, as in the course: one character at a time,
    the whole word "hello", and the batch of three words "hello", "eolll", "lleel". Each is fed an explicit
    (seeded, random) initial state so that its shape shows too.

    Args:
        seed: seed of the weights and initial states (the shapes never depend on it). The global random
            state is left untouched.

    Returns:
        18 :class:`CellShapes` rows: for each cell (RNN, GRU, LSTM), for ``batch_first`` True then False,
        the cases "one char", "one word", "three words".

    Inputs of each experiment's call: input, h_0 (LSTM: input, (h_0, c_0))
        * **input**: one-hot symbols, ``(N, L, H_in)`` if batch_first else ``(L, N, H_in)``.
        * **h_0**: the initial hidden state ``(D * num_layers, N, H_out)`` in **both** layouts.
        * **c_0**: the LSTM's initial cell state ``(D * num_layers, N, H_cell)``.

    Outputs of each experiment's call: output, h_n (LSTM: output, (h_n, c_n))
        * **output**: ``(N, L, D * H_out)`` if batch_first else ``(L, N, D * H_out)``: the last layer's
          state at every time step.
        * **h_n**: the final hidden state ``(D * num_layers, N, H_out)``, whatever ``batch_first`` says.
        * **c_n**: the LSTM's final cell state ``(D * num_layers, N, H_cell)``.

    where:
        N = batch size (1 or 3)
        L = sequence length (1 or 5)
        H_in = input_size = 4
        H_out = hidden_size = 2
        H_cell = hidden_size = 2 (LSTM only)
        D = 1 (one direction), num_layers = 1

    What the course code got wrong:
        * It shows ``nn.RNN`` only; the GRU and the LSTM, whose state is the pair ``(h, c)``, never appear.
          Here all three cells run every experiment.
        * It prints the input and output sizes but never the hidden state's, which is the shape the lesson
          warns about (its comment says it stays ``(num_layers * num_directions, batch, hidden_size)`` whatever
          ``batch_first`` is). Here ``h_n`` (and ``c_n``) are recorded for every call, so the table shows it.
        * "We can do the whole at once" starts the whole word from the state the one-char loop left behind, so
          the two runs are not the same computation. Here each experiment starts from its own initial state
          (and the tests check that the loop and the whole word give the same outputs from the same state).
        * ``Variable`` and ``torch.Tensor(list)`` are long deprecated: plain tensors and
          ``nn.functional.one_hot`` build the input.
    """
    words = one_hot_words()  # (batch=3, time=5, input=4)
    rows: list[CellShapes] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, cell_class in _CELLS.items():
            for batch_first in (True, False):
                cell = cell_class(input_size=TOUR_INPUT, hidden_size=TOUR_HIDDEN, batch_first=batch_first)
                time_axis = 1 if batch_first else 0
                hello = words[:1]  # (batch=1, time=5, input)

                # one char: one time step per call, the state carried from call to call
                state = _initial_state(name, batch=1)
                for t in range(hello.shape[1]):
                    x = _layout(hello[:, t : t + 1], batch_first)  # (1, 1, input) in either layout
                    output, state = cell(x, state)
                rows.append(_row(name, batch_first, "one char", x, output, state, time_axis))

                # one word: all of "hello" in one call
                x = _layout(hello, batch_first)  # (1, 5, input) or (5, 1, input)
                output, state = cell(x, _initial_state(name, batch=1))
                rows.append(_row(name, batch_first, "one word", x, output, state, time_axis))

                # three words: a batch of 3
                x = _layout(words, batch_first)  # (3, 5, input) or (5, 3, input)
                output, state = cell(x, _initial_state(name, batch=len(TOUR_WORDS)))
                rows.append(_row(name, batch_first, "three words", x, output, state, time_axis))
    return rows


def _layout(x: Tensor, batch_first: bool) -> Tensor:
    """``(batch, time, input)`` as the layer reads it: as is if batch_first, else ``(time, batch, input)``."""
    return x if batch_first else x.transpose(0, 1)  # (batch, time, input) -> (time, batch, input)


def _initial_state(name: str, batch: int) -> Tensor | tuple[Tensor, Tensor]:
    """A random initial state of shape ``(layers*dirs=1, batch, hidden=2)`` (a pair for the LSTM)."""
    h_0 = torch.randn(1, batch, TOUR_HIDDEN)  # (layers*dirs, batch, hidden)
    if name == "LSTM":
        return h_0, torch.randn(1, batch, TOUR_HIDDEN)  # c_0: (layers*dirs, batch, cell)
    return h_0


def _row(
    name: str,
    batch_first: bool,
    case: str,
    x: Tensor,
    output: Tensor,
    state: Tensor | tuple[Tensor, Tensor],
    time_axis: int,
) -> CellShapes:
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    return CellShapes(
        cell=name,
        batch_first=batch_first,
        case=case,
        batch=x.shape[1 - time_axis],
        time=x.shape[time_axis],
        input=tuple(x.shape),
        output=tuple(output.shape),
        hidden=tuple(h_n.shape),
        cell_state=None if c_n is None else tuple(c_n.shape),
    )
