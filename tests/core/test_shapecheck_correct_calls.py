"""shapecheck accepts calls that torch runs correctly, written the way third-party code writes them (each case
here was refused, or crashed, until a stranger's repro showed it; round 5). Where such a call hides a real
mistake, the mistake is still caught."""

import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnshapes
from rnnshapes import Hidden, LSTMState, Packed, ShapeError, shapecheck


class WordLM(nn.Module):
    """pytorch/examples' word_language_model (time-major), as PyTorch's dynamic quantization tutorial uses it."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Embedding(50, 16)
        self.rnn = nn.LSTM(16, 16, 2)
        self.decoder = nn.Linear(16, 50)

    def shape_dims(self) -> dict[str, int]:
        return {"vocab": self.encoder.num_embeddings}

    @shapecheck
    def forward(
        self, input: Int[Tensor, "*seq"], hidden: LSTMState
    ) -> tuple[Float[Tensor, "*seq vocab"], LSTMState]:
        output, hidden = self.rnn(self.encoder(input), hidden)
        return self.decoder(output), hidden


def test_a_dynamically_quantized_lstm_still_gives_its_layout_and_sizes():
    model = WordLM().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation warnings
        quantized = torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
        x, state = torch.randint(0, 50, (35, 4)), (torch.zeros(2, 4, 16), torch.zeros(2, 4, 16))
        out, _ = quantized(x, state)  # (time=35, batch=4): the quantized LSTM is time-major too
        assert out.shape == (35, 4, 50)
        with pytest.raises(
            ShapeError, match=r"(?s)'hidden\[0\]'.*axis 0 \(layers\*dirs\) should be 2, got 1"
        ):
            quantized(x, (torch.zeros(1, 4, 16), torch.zeros(1, 4, 16)))


class Finetuned(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.batch_first = True
        self.rnn = nn.GRU(5, 7, batch_first=True)
        self.head = nn.Linear(7, 3)

    def shape_dims(self) -> dict[str, int]:
        return {"classes": self.head.out_features}  # as docs/shapes.md teaches

    @shapecheck
    def forward(self, x: Float[Tensor, "*seq input"]) -> Float[Tensor, "batch classes"]:
        return self.head(self.rnn(x)[1][-1])


def test_shape_dims_are_read_again_when_they_change():
    model = Finetuned()
    x = torch.randn(2, 4, 5)
    assert model(x).shape == (2, 3)
    model.head = nn.Linear(7, 10)  # a new head for fine-tuning
    assert model(x).shape == (2, 10)
    model.shape_dims = lambda: {"classes": 4}  # type: ignore[method-assign]
    with pytest.raises(
        ShapeError, match=r"(?s)axis 1 \(classes\) should be 4, got 10.*from self\.shape_dims\(\)"
    ):
        model(x)


class Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(5, 7)

    @shapecheck
    def forward(self, src: Packed[PackedSequence, "input"], tgt: Packed[PackedSequence, "input"]) -> Tensor:
        return self.rnn(src)[1] + self.rnn(tgt)[1]


def test_two_packed_arguments_each_have_their_own_total():
    def packed(lengths: list[int]) -> PackedSequence:
        return pack_padded_sequence(
            torch.randn(max(lengths), 2, 5), torch.tensor(lengths), enforce_sorted=False
        )

    assert Pair()(packed([4, 2]), packed([3, 3])).shape == (1, 2, 7)  # totals 6 and 6
    assert Pair()(packed([4, 5]), packed([1, 2])).shape == (1, 2, 7)  # totals 9 and 3
    with pytest.raises(ShapeError, match=r"'tgt' has the wrong batch size"):
        Pair()(packed([4, 5]), pack_padded_sequence(torch.randn(3, 3, 5), torch.tensor([3, 2, 1])))


class Optional_(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.batch_first = True
        self.rnn = nn.GRU(5, 7, batch_first=True)

    @shapecheck
    def forward(self, x: Float[Tensor, "*seq input"], hidden: Hidden = None) -> Hidden:  # type: ignore[assignment]
        return self.rnn(x, hidden)[1]


def test_a_default_left_alone_is_not_checked():
    model = Optional_()
    assert model(torch.randn(2, 3, 5)).shape == (1, 2, 7)  # the implicit-Optional spelling, state omitted
    assert model(torch.randn(2, 3, 5), torch.zeros(1, 2, 7)).shape == (1, 2, 7)
    with pytest.raises(ShapeError, match=r"argument 'hidden' has the wrong shape"):
        model(torch.randn(2, 3, 5), torch.zeros(1, 3, 7))

    @shapecheck
    def scale(x: Float[Tensor, " n"], w: Float[Tensor, " n"] = torch.ones(5)) -> Float[Tensor, " n"]:  # noqa: B008
        return x * 2

    assert scale(torch.ones(3)).shape == (3,)  # an unused default of another size


def test_a_variadic_name_and_a_single_name_are_apart_as_in_jaxtyping():
    @shapecheck
    def f(
        x: Float[Tensor, "*batch hidden"], y: Float[Tensor, "batch hidden"]
    ) -> Float[Tensor, "*batch hidden"]:
        return x + y.sum(0)

    assert f(torch.randn(3, 7), torch.randn(3, 7)).shape == (3, 7)
    assert f(torch.randn(2, 4, 7), torch.randn(3, 7)).shape == (2, 4, 7)
    with pytest.raises(ShapeError, match=r"argument 'y' has the wrong shape"):
        f(torch.randn(3, 7), torch.randn(3, 6))


class CharWordTagger(nn.Module):
    """A Lample-style tagger: a char LSTM registered before the word LSTM, of other sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_first = True
        self.char_lstm = nn.LSTM(8, 12, batch_first=True, bidirectional=True)
        self.word_lstm = nn.LSTM(44, 32, batch_first=True, bidirectional=True)

    @shapecheck
    def words(self, x: Float[Tensor, "*seq input"], state: LSTMState) -> Float[Tensor, "*seq dirs*hidden"]:
        return self.word_lstm(x, state)[0]


def test_several_recurrent_layers_bind_only_the_sizes_they_agree_on():
    model = CharWordTagger()
    state = (torch.zeros(2, 3, 32), torch.zeros(2, 3, 32))
    assert model.words(torch.randn(3, 7, 44), state).shape == (3, 7, 64)  # the word LSTM's sizes
    with pytest.raises(ShapeError, match=r"(?s)'state\[0\]'.*axis 0 \(layers\*dirs\) should be 2, got 1"):
        model.words(
            torch.randn(3, 7, 44), (torch.zeros(1, 3, 32), torch.zeros(1, 3, 32))
        )  # both agree: 1 layer, 2 dirs


@shapecheck
def encode(rnn: nn.GRU, x: Float[Tensor, "*seq input"], h: Hidden | None = None) -> Hidden:
    return rnn(x, h)[1]


class CellLoop(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(5, 7)

    @shapecheck
    def forward(
        self, x: Float[Tensor, "*seq input"], h: Float[Tensor, "batch hidden"]
    ) -> Float[Tensor, "batch hidden"]:
        for x_t in x:  # time-major: one (batch, input) step at a time
            h = self.cell(x_t, h)
        return h


def test_seq_without_a_batch_first_to_read_takes_either_order():
    gru = nn.GRU(4, 6)  # time-major, torch's default
    assert encode(gru, torch.randn(7, 3, 4), torch.zeros(1, 3, 6)).shape == (1, 3, 6)
    assert CellLoop()(torch.randn(6, 3, 5), torch.zeros(3, 7)).shape == (3, 7)
    with pytest.raises(ShapeError) as info:
        CellLoop()(torch.randn(6, 3, 5), torch.zeros(4, 7))  # batch 4 fits neither order
    message = str(info.value)
    assert "*seq was tried both ways" in message and "batch_first=True" not in message


def test_a_sequence_without_steps_is_not_refused_before_a_layer_refuses_it():
    class Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.batch_first = True
            self.rnn = nn.GRU(5, 7, batch_first=True)

        @shapecheck
        def forward(self, prime: Float[Tensor, "*seq input"]) -> Float[Tensor, "batch hidden"]:
            if prime.shape[1] == 0:  # an empty prime: generation starts from zeros
                return torch.zeros(prime.shape[0], 7)
            return self.rnn(prime)[1][-1]

    assert Generator()(torch.randn(2, 0, 5)).shape == (2, 7)


def test_an_lstm_state_may_be_a_list_as_torch_takes_it():
    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(5, 7)

        @shapecheck
        def forward(self, x: Float[Tensor, "*seq input"], state: LSTMState) -> Float[Tensor, "*seq hidden"]:
            return self.rnn(x, state)[0]

    assert Tagger()(torch.randn(3, 2, 5), [torch.zeros(1, 2, 7), torch.zeros(1, 2, 7)]).shape == (3, 2, 7)
    with pytest.raises(ShapeError, match=r"'state\[1\]' has the wrong shape"):
        Tagger()(torch.randn(3, 2, 5), [torch.zeros(1, 2, 7), torch.zeros(1, 4, 7)])


def _run_module(folder, source: str) -> list[str]:
    """Run ``source`` as a module of its own in a fresh interpreter (annotations as a module has them): its lines."""
    (folder / "module.py").write_text(textwrap.dedent(source), encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "module.py"], cwd=folder, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def test_a_forward_reference_under_future_annotations_is_read_at_the_first_call(tmp_path):
    source = """
        from __future__ import annotations
        from dataclasses import dataclass
        import torch
        from jaxtyping import Float
        from torch import Tensor, nn
        from rnnshapes import shapecheck

        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.batch_first = True
                self.rnn = nn.GRU(5, 7, batch_first=True)

            @shapecheck
            def forward(self, x: Float[Tensor, "*seq input"]) -> Output:
                return Output(*self.rnn(x))

        @dataclass
        class Output:  # defined after the model, as output dataclasses often are
            outputs: Tensor
            hidden: Tensor

        print(type(Encoder()(torch.randn(2, 3, 5))).__name__)
        try:
            Encoder()(torch.randn(2, 3, 4))
        except Exception as e:
            print(type(e).__name__)
    """
    assert _run_module(tmp_path, source) == ["Output", "ShapeError"]


def test_one_state_per_layer_in_a_tuple_or_list_is_checked_item_by_item():
    class Stacked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(5, 7)

        @shapecheck
        def forward(self, x: Float[Tensor, "*seq input"], states: tuple[Hidden, ...]) -> Hidden:
            return self.rnn(x, states[0])[1]

    @shapecheck
    def attend(
        query: Float[Tensor, "batch hidden"], memories: list[Float[Tensor, "batch time hidden"]]
    ) -> Tensor:
        return sum(torch.einsum("bh,bth->bt", query, m).sum() for m in memories)  # type: ignore[return-value]

    assert Stacked()(torch.randn(3, 2, 5), (torch.zeros(1, 2, 7), torch.zeros(1, 2, 7))).shape == (1, 2, 7)
    assert attend(torch.randn(3, 8), [torch.randn(3, 4, 8), torch.randn(3, 4, 8)]).shape == ()
    with pytest.raises(ShapeError, match=r"argument 'memories\[1\]' has the wrong shape"):
        attend(torch.randn(3, 8), [torch.randn(3, 4, 8), torch.randn(1, 4, 8)])  # torch would broadcast it


def test_complex_input_to_a_complex_layer_blames_the_annotation_not_the_layer():
    class Complex_(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.batch_first = True
            self.rnn = nn.GRU(5, 7, batch_first=True, dtype=torch.complex64)

        @shapecheck
        def forward(self, x: Float[Tensor, "*seq input"]) -> Tensor:
            return self.rnn(x)[0]

    with pytest.raises(ShapeError, match=r"its annotation says Float: annotate it Complex\[\.\.\.\]") as info:
        Complex_()(torch.randn(2, 4, 5, dtype=torch.complex64))
    assert ".real" not in str(info.value)


def test_a_return_value_in_the_other_layout_is_told_to_transpose_before_returning():
    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.batch_first = True
            self.rnn = nn.GRU(5, 7, batch_first=True)

        @shapecheck
        def forward(self, x: Float[Tensor, "*seq input"]) -> Float[Tensor, "*seq hidden"]:
            return self.rnn(x)[0].transpose(0, 1)

    with pytest.raises(
        ShapeError, match=r"transpose it before returning \(output\.transpose\(0, 1\)\)\.$"
    ) as info:
        Encoder()(torch.randn(2, 3, 5))
    assert "build the module" not in str(info.value)


def test_jit_trace_of_a_checked_model_warns_nothing_from_rnnshapes():
    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.batch_first = True
            self.rnn = nn.GRU(5, 7, batch_first=True)

        @shapecheck
        def forward(self, x: Float[Tensor, "*seq input"], h: Hidden) -> Hidden:
            return self.rnn(x, h)[1]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = torch.jit.trace(Encoder(), (torch.randn(2, 4, 5), torch.zeros(1, 2, 7)))
    assert [str(w.message) for w in caught if "rnnshapes" in w.filename] == []
    assert traced(torch.randn(2, 4, 5), torch.zeros(1, 2, 7)).shape == (1, 2, 7)
    assert rnnshapes.checks_enabled()


class SentenceClassifier(nn.Module):
    """A time-major word LSTM and a batch-first char LSTM: no one batch_first to read (round 6)."""

    def __init__(self) -> None:
        super().__init__()
        self.word = nn.LSTM(5, 8)
        self.char = nn.LSTM(3, 4, batch_first=True)
        self.head = nn.Linear(8, 4)

    @shapecheck
    def forward(self, words: Float[Tensor, "*seq input"]) -> Float[Tensor, "batch classes"]:
        return self.head(self.word(words)[0][-1])


def test_the_return_value_is_tried_in_both_orders_with_the_arguments():
    assert SentenceClassifier()(torch.randn(7, 3, 5)).shape == (3, 4)  # (time=7, batch=3)

    @shapecheck
    def last(x: Float[Tensor, "*seq feat"]) -> Float[Tensor, "batch feat"]:
        return x[-1]  # time-major

    @shapecheck
    def collate(xs: list[Float[Tensor, "_time input"]]) -> Float[Tensor, "*seq input"]:
        return torch.nn.utils.rnn.pad_sequence(xs)  # (time, batch, input) by default

    assert last(torch.randn(5, 3, 4)).shape == (3, 4)
    assert collate([torch.randn(5, 4), torch.randn(2, 4), torch.randn(3, 4)]).shape == (5, 3, 4)

    @shapecheck
    def wrong(x: Float[Tensor, "*seq feat"]) -> Float[Tensor, "batch feat"]:
        return x.sum(0).sum(0, keepdim=True)  # (1, feat): a batch of 1 in either order

    with pytest.raises(ShapeError, match=r"(?s)'return value' has the wrong shape.*tried both ways"):
        wrong(torch.randn(5, 3, 4))


def test_an_annotation_for_type_checkers_only_is_left_unchecked(tmp_path):
    source = """
        from __future__ import annotations
        from typing import TYPE_CHECKING
        import torch
        from jaxtyping import Float
        from torch import Tensor, nn
        from rnnshapes import shapecheck

        if TYPE_CHECKING:
            from mypackage.config import Config  # exists for type checkers only

        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.batch_first = True
                self.rnn = nn.GRU(5, 7, batch_first=True)

            @shapecheck
            def forward(self, x: Float[Tensor, "*seq input"], cfg: Config | None = None) -> Float[Tensor, "*seq hidden"]:
                return self.rnn(x)[0]

        print(tuple(Encoder()(torch.randn(2, 3, 5)).shape))
        try:
            Encoder()(torch.randn(2, 3, 4))
        except Exception as e:
            print(type(e).__name__)
    """
    assert _run_module(tmp_path, source) == ["(2, 3, 7)", "ShapeError"]


def test_jit_trace_keeps_the_users_own_tracer_warnings():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.batch_first = True
            self.rnn = nn.GRU(5, 7, batch_first=True)

        @shapecheck
        def forward(self, x: Float[Tensor, "*seq input"]) -> Float[Tensor, "*seq hidden"]:
            out = self.rnn(x)[0]
            if out.sum() > 0:  # data-dependent: the trace may not generalise, and torch says so
                return out
            return -out

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.jit.trace(Branchy(), (torch.randn(2, 4, 5),))
    assert any(issubclass(w.category, torch.jit.TracerWarning) and w.filename == __file__ for w in caught)
    assert not any("rnnshapes" in w.filename for w in caught)


def test_hints_without_a_layout_or_a_layer_count_give_advice_that_runs():
    class Loop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cell = nn.GRUCell(5, 6)

        @shapecheck
        def forward(self, x: Float[Tensor, "*seq input"]) -> Float[Tensor, "batch hidden"]:
            h = torch.zeros(x.shape[1], 6)
            for x_t in x:  # time-major
                h = self.cell(x_t, h)
            return h

    with pytest.raises(
        ShapeError, match=r"x\.unsqueeze\(0\) for \(batch, time, \.\.\.\) or x\.unsqueeze\(1\)"
    ):
        Loop()(torch.randn(5, 5))  # one unbatched sequence

    class TwoStacks(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.batch_first = True
            self.encoder = nn.GRU(5, 8, num_layers=2, batch_first=True)
            self.decoder = nn.GRU(5, 8, batch_first=True)

        @shapecheck
        def decode(self, y: Float[Tensor, "*seq input"], h: Hidden) -> Hidden:
            return self.decoder(y, h)[1]

    with pytest.raises(ShapeError, match=r"\[cell-hidden\]") as info:
        TwoStacks().decode(torch.randn(3, 4, 5), torch.zeros(3, 8))
    assert "torch.zeros(None" not in str(info.value)
    assert "torch.zeros(layers * (2 if bidirectional else 1), 3, hidden)" in str(info.value)


def test_one_packed_argument_gives_total_to_the_others():
    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(4, 8)

        @shapecheck
        def loss(self, packed: Packed[PackedSequence, "input"], targets: Int[Tensor, " total"]) -> Tensor:
            return self.rnn(packed)[0].data.sum() + targets.sum()

    packed = pack_padded_sequence(torch.randn(5, 2, 4), torch.tensor([5, 3]))  # 8 rows
    Tagger().loss(packed, torch.zeros(8, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"(?s)'targets'.*total=8 from packed\.data axis 0"):
        Tagger().loss(packed, torch.zeros(7, dtype=torch.long))


def test_shape_dims_is_not_called_on_a_signature_that_passed_before():
    model, calls = Finetuned(), []
    dims = model.shape_dims
    model.shape_dims = lambda: calls.append(1) or dims()  # type: ignore[method-assign]
    x = torch.randn(2, 4, 5)
    for _ in range(20):
        model(x)
    assert len(calls) <= 3  # the first read and the first full check, not one per call


def test_a_returned_packed_batch_and_packed_batches_in_one_argument_keep_their_own_rows():
    class NextStep(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(4, 6)

        @shapecheck
        def forward(self, packed: Packed[PackedSequence, "input"]) -> Packed[PackedSequence, " hidden"]:
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0])
            return pack_padded_sequence(out[1:], torch.tensor([4, 2]))  # steps 1..T-1: fewer rows

    @shapecheck
    def pair(batches: tuple[Packed[PackedSequence, "input"], Packed[PackedSequence, "input"]]) -> int:
        return len(batches)

    def packed(lengths: list[int]) -> PackedSequence:
        return pack_padded_sequence(torch.randn(max(lengths), len(lengths), 4), torch.tensor(lengths))

    assert NextStep()(packed([5, 3])).data.shape == (6, 6)
    assert pair((packed([5, 3]), packed([3, 2]))) == 2


def test_annotations_resolve_in_the_users_module_under_wrappers_compile_and_type_checking_imports(tmp_path):
    source = """
        from __future__ import annotations
        from typing import TYPE_CHECKING
        import torch
        from jaxtyping import Float
        from torch import Tensor, nn
        from rnnshapes import shapecheck

        if TYPE_CHECKING:
            import torch.utils.tensorboard  # an attribute, not a name, that is missing at run time

        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.batch_first = True
                self.rnn = nn.GRU(5, 7, batch_first=True)

            @shapecheck
            @torch.no_grad()  # a wrapper from another module
            def forward(
                self, x: Float[Tensor, "*seq input"], log: torch.utils.tensorboard.SummaryWriter | None = None
            ) -> Float[Tensor, "*seq hidden"]:
                return self.rnn(x)[0]

        model = Encoder()
        compiled = torch.compile(model, backend="eager")  # the annotations are first read under compile
        print(tuple(compiled(torch.randn(2, 3, 5)).shape))
        try:
            Encoder()(torch.randn(2, 3, 4))
        except Exception as e:
            print(type(e).__name__)
    """
    assert _run_module(tmp_path, source) == ["(2, 3, 7)", "ShapeError"]
