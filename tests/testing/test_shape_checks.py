"""distinct_sizes, coincidences and check_shape_contract."""

import dataclasses
import itertools

import pytest
import torch
from rnn_zoo import BiGRU, LSTMNet, PackedInput
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from rnnshapes.testing import CheckFailed, check_shape_contract, coincidences, distinct_sizes

NAMES = ["batch", "time", "input", "hidden", "layers", "layers*dirs", "classes"]
LSTM_CONTRACT = ("batch time dirs*hidden", ("layers*dirs batch hidden", "layers*dirs batch hidden"))
LSTM_NAMES = ["batch", "time", "input", "hidden", "layers", "layers*dirs", "dirs*hidden"]


def make_lstm(sizes, swap_hidden=False):
    return LSTMNet(sizes["input"], sizes["hidden"], sizes["layers"], swap_hidden=swap_hidden)


def make_x(sizes):
    return torch.randn(sizes["batch"], sizes["time"], sizes["input"])


def test_distinct_sizes_are_pairwise_distinct_including_products():
    sizes = distinct_sizes(NAMES)
    assert sizes["dirs"] == 2 and sizes["layers*dirs"] == sizes["layers"] * 2
    values = [sizes[n] for n in [*NAMES, "dirs"]]
    assert len(set(values)) == len(values)
    assert min(values) >= 2
    assert list(sizes)[: len(NAMES)] == NAMES  # in the order asked, factors after


def test_distinct_sizes_with_fixed_values_and_start():
    sizes = distinct_sizes(["batch", "layers*dirs", "hidden"], fixed={"dirs": 1, "layers": 2}, start=3)
    assert sizes == {"batch": 3, "layers*dirs": 2, "hidden": 4, "layers": 2, "dirs": 1}
    assert coincidences(sizes) == []  # layers*dirs = layers by definition when dirs = 1
    with pytest.raises(ValueError, match="the fixed sizes already coincide"):
        distinct_sizes(["batch"], fixed={"batch": 2, "time": 2})


def test_coincidences_finds_the_pair_that_hid_a_real_bug():
    assert coincidences({"batch": 2, "layers": 1, "dirs": 2, "layers*dirs": 2, "hidden": 5}) == [
        ("batch", "dirs", 2),
        ("batch", "layers*dirs", 2),
    ]
    # layers*dirs = dirs is no coincidence when layers = 1; with 2 layers, dirs = 2 and layers*dirs = 4 differ
    assert coincidences({"layers": 3, "dirs": 2, "layers*dirs": 6, "hidden": 6}) == [
        ("layers*dirs", "hidden", 6)
    ]


def test_the_contract_passes_on_a_correct_lstm():
    used = check_shape_contract(
        make_lstm, make_x, LSTM_CONTRACT, sizes=["batch", "time", "input", "hidden", "layers"]
    )
    assert len(set(used.values())) == len(used)


def test_a_swapped_hidden_state_is_named_axis_by_axis():
    sizes = distinct_sizes(LSTM_NAMES)
    batch, ld, hidden = sizes["batch"], sizes["layers*dirs"], sizes["hidden"]
    model = make_lstm(sizes, swap_hidden=True)
    with pytest.raises(CheckFailed, match=rf"result\[1\]\[0\] has shape \({batch}, {ld}, {hidden}\)") as info:
        check_shape_contract(model, make_x, LSTM_CONTRACT, sizes=sizes)
    message = str(info.value)
    assert f"axis 0: got {batch} (= batch), expected layers*dirs = {ld}" in message
    assert "swapped: layers*dirs and batch (axes 0 and 1)" in message
    assert "result[1][1]" not in message  # c is right


def test_coinciding_sizes_are_refused_because_they_hide_the_swap():
    coinciding = {"batch": 2, "time": 5, "input": 3, "hidden": 4, "layers": 1, "dirs": 2, "layers*dirs": 2}
    # with batch == layers*dirs the buggy model passes a plain shape comparison...
    model = make_lstm(coinciding, swap_hidden=True)
    _, (h, _) = model(make_x(coinciding))
    assert tuple(h.shape) == (2, 2, 4)
    # ...so the check refuses such sizes (batch = dirs is no coincidence: dirs alone is never an axis here)
    with pytest.raises(ValueError, match=r"pairwise-distinct sizes, but batch = layers\*dirs = 2: a swap"):
        check_shape_contract(model, make_x, LSTM_CONTRACT, sizes=coinciding)


def test_structure_mismatches_packed_data_and_skipped_parts():
    sizes = distinct_sizes(LSTM_NAMES)
    with pytest.raises(CheckFailed, match=r"result\[1\] is tuple\(Tensor"):
        check_shape_contract(
            make_lstm, make_x, ("batch time dirs*hidden", "layers*dirs batch hidden"), sizes=sizes
        )
    with pytest.raises(ValueError, match="names 'vocab', which is not in sizes"):
        check_shape_contract(make_lstm, make_x, ("batch time vocab", None), sizes=sizes)

    lengths = list(range(sizes["time"], sizes["time"] - sizes["batch"], -1))
    sizes_total = {**sizes, "total": sum(lengths)}

    def packed(s):
        return pack_padded_sequence(make_x(s), lengths, batch_first=True)

    check_shape_contract(
        make_lstm, packed, ("total dirs*hidden", (None, "layers*dirs batch hidden")), sizes=sizes_total
    )


def test_expected_may_be_a_function_of_the_sizes_and_integer_literals_work():
    check_shape_contract(
        make_lstm,
        make_x,
        lambda s: ((s["batch"], s["time"], 2 * s["hidden"]), ("layers*dirs batch hidden", None)),
        sizes=LSTM_NAMES,
    )
    check_shape_contract(
        make_lstm,
        make_x,
        ("batch time dirs*hidden", None),
        sizes=["batch", "time", "input", "hidden", "layers"],
    )


def test_an_exception_inside_the_model_carries_the_sizes():
    def broken(sizes):
        return lambda x: x.view(sizes["time"], -1, 7)

    with pytest.raises(RuntimeError) as info:
        check_shape_contract(broken, make_x, "batch time hidden", sizes=["batch", "time", "input", "hidden"])
    assert any("check_shape_contract: the model raised with sizes" in note for note in info.value.__notes__)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")
def test_a_factory_that_needs_one_size_below_another_is_told_how_to_order_the_names():
    # the vocabulary's hidden is the output (proj_size), cell the cell state (hidden_size)
    def projected(sizes):
        return nn.LSTM(sizes["input"], sizes["cell"], proj_size=sizes["hidden"], batch_first=True)

    contract = ("batch time hidden", ("layers*dirs batch hidden", "layers*dirs batch cell"))
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size") as info:
        check_shape_contract(projected, make_x, contract, sizes=["batch", "time", "input", "cell", "hidden"])
    notes = "\n".join(info.value.__notes__)
    assert (
        "the model factory raised with sizes {'batch': 3, 'time': 4, 'input': 5, 'cell': 6, 'hidden': 7"
        in notes
    )
    assert "name the smaller first, or pass sizes as a dict" in notes
    # following the note (hidden named before cell) builds the model, and the contract holds
    used = check_shape_contract(
        projected, make_x, contract, sizes=["batch", "time", "input", "hidden", "cell"]
    )
    assert used["hidden"] < used["cell"]


@pytest.mark.parametrize("names", list(itertools.permutations(["batch", "layers*dirs", "time"])))
def test_distinct_sizes_any_order(names):
    sizes = distinct_sizes(names)
    assert coincidences(sizes) == []


BI_NAMES = ["batch", "time", "input", "hidden"]
BI_CONTRACT = ("batch time 2*hidden", "2 batch hidden")


def test_integer_factors_and_literal_axes_are_constants_not_dimension_names():
    sizes = distinct_sizes(["batch", "time", "2*hidden", "hidden*2", "2"])
    assert "2" not in sizes and sizes["2*hidden"] == sizes["hidden*2"] == 2 * sizes["hidden"]
    assert 2 not in sizes.values()  # nothing may coincide with the literal axis 2
    assert coincidences({"hidden": 3, "2*hidden": 6, "hidden*2": 6}) == []  # the same axis twice
    assert coincidences({"batch": 6, "hidden": 3, "2*hidden": 6}) == [("batch", "2*hidden", 6)]
    # sizes that are equal whatever is picked are refused (the search once looped forever on them)
    with pytest.raises(ValueError, match=r"no size of 'b' keeps the sizes pairwise distinct: a\*b = 2\*b"):
        distinct_sizes(["b", "a*b", "2*b"], fixed={"a": 2})


def test_a_correct_bidirectional_gru_passes_a_contract_with_2_times_hidden():
    used = check_shape_contract(lambda s: BiGRU(s["input"], s["hidden"]), make_x, BI_CONTRACT, sizes=BI_NAMES)
    assert used["2*hidden"] == 2 * used["hidden"] and "2" not in used
    given = {"batch": 3, "time": 4, "input": 5, "hidden": 6}  # the product is computed from given sizes too
    check_shape_contract(BiGRU(5, 6), make_x, BI_CONTRACT, sizes=given)


def test_a_bidirectional_gru_with_one_direction_dropped_fails_naming_the_axis():
    sizes = distinct_sizes([*BI_NAMES, "2*hidden"])
    hidden = sizes["hidden"]
    with pytest.raises(
        CheckFailed, match=rf"axis 2: got {hidden} \(= hidden\), expected 2\*hidden = {2 * hidden}"
    ):
        check_shape_contract(BiGRU(sizes["input"], hidden, half=True), make_x, BI_CONTRACT, sizes=sizes)


def test_a_state_swapped_with_a_literal_axis_is_caught_because_batch_avoids_its_size():
    batch = distinct_sizes(BI_NAMES)["batch"]
    assert batch == 2  # asked alone, batch would be 2, and a (batch, 2) swap would pass unseen
    with pytest.raises(CheckFailed, match=r"swapped: 2 and batch \(axes 0 and 1\)"):
        check_shape_contract(
            lambda s: BiGRU(s["input"], s["hidden"], batch_first_state=True),
            make_x,
            BI_CONTRACT,
            sizes=BI_NAMES,
        )


# Issue 18, item 5: factors and products agree, and sizes that never meet on one axis may coincide


def test_the_common_bidirectional_set_up_is_accepted_with_factors_that_coincide():
    sizes = distinct_sizes(
        ["batch", "time", "input", "hidden", "layers*dirs"], fixed={"layers": 2, "dirs": 2}
    )
    assert sizes["layers*dirs"] == 4 and sizes["layers"] == sizes["dirs"] == 2
    assert 4 not in [sizes[n] for n in ("batch", "time", "input", "hidden")]
    assert coincidences(sizes, axes=["batch", "time", "input", "hidden", "layers*dirs"]) == []
    used = check_shape_contract(
        lambda s: LSTMNet(s["input"], s["hidden"], s["layers"]),
        make_x,
        (None, ("layers*dirs batch hidden", "layers*dirs batch hidden")),
        sizes={**sizes},
    )
    assert used["layers"] == used["dirs"] == 2


def test_a_fixed_product_decides_its_factors():
    sizes = distinct_sizes(["batch", "time", "layers*dirs"], fixed={"layers*dirs": 4})
    assert (sizes["layers"], sizes["dirs"], sizes["layers*dirs"]) == (2, 2, 4)
    assert distinct_sizes(["batch", "layers*dirs"], fixed={"layers*dirs": 3, "dirs": 1})["layers"] == 3
    # a correct 2-layer bidirectional GRU built from them passes its contract
    check_shape_contract(
        lambda s: nn.GRU(
            s["input"], s["hidden"], num_layers=s["layers"], bidirectional=True, batch_first=True
        ),
        make_x,
        ("batch time 2*hidden", "layers*dirs batch hidden"),
        sizes=distinct_sizes(["batch", "time", "input", "hidden", "layers*dirs"], fixed={"layers*dirs": 4}),
    )
    with pytest.raises(
        ValueError, match=r"the fixed sizes disagree: layers\*dirs = 4, but layers \* dirs = 3 \* 2"
    ):
        distinct_sizes(["batch", "layers*dirs"], fixed={"layers*dirs": 4, "layers": 3})
    with pytest.raises(ValueError, match=r"layers\*dirs = 5 is not a multiple of the other factors' 2"):
        distinct_sizes(["batch", "layers*dirs"], fixed={"layers*dirs": 5})
    with pytest.raises(ValueError, match=r"fix all but one factor of a\*b"):
        distinct_sizes(["batch", "a*b"], fixed={"a*b": 6})


# Issue 12, item 7: total and layers/dirs come from the inputs and the model, or the contract is blamed


def make_packed_lstm_inputs(sizes):
    lengths = torch.arange(sizes["time"], sizes["time"] - sizes["batch"], -1)
    return pack_padded_sequence(make_x(sizes), lengths, batch_first=True)


def test_total_is_read_from_the_packed_inputs():
    used = check_shape_contract(
        make_lstm,
        make_packed_lstm_inputs,
        ("total dirs*hidden", None),
        sizes=["batch", "time", "input", "hidden", "layers"],
    )
    assert used["total"] == sum(range(used["time"], used["time"] - used["batch"], -1))
    # from a lengths input too: the call packs (x, lengths) inside
    used = check_shape_contract(
        PackedInput(),
        lambda s: (
            torch.randn(s["batch"], s["time"], 3),
            torch.arange(s["time"], s["time"] - s["batch"], -1),
        ),
        ("total 5", "1 batch 5"),
        sizes=["batch", "time"],
        call=lambda m, x, lengths: m(pack_padded_sequence(x, lengths, batch_first=True)),
    )
    assert used["total"] == sum(range(used["time"], used["time"] - used["batch"], -1))


def test_a_total_that_the_inputs_do_not_make_true_blames_the_contract():
    sizes = {**distinct_sizes(LSTM_NAMES), "total": 8}
    with pytest.raises(ValueError, match=r"the sizes say total = 8, but the inputs make it \d+ \(the rows of the "
                                         r"packed input\): the contract, not the model, is off"):  # fmt: skip
        check_shape_contract(make_lstm, make_packed_lstm_inputs, ("total dirs*hidden", None), sizes=sizes)
    with pytest.raises(ValueError, match=r"the contract names total .* put sizes\['total'\]"):
        check_shape_contract(make_lstm, make_x, ("total dirs*hidden", None), sizes=LSTM_NAMES)


def test_layers_and_dirs_are_read_from_the_model_s_recurrent_layers():
    def make_gru(s):  # unidirectional, built with the probe's layers
        return nn.GRU(s["input"], s["hidden"], num_layers=s["layers"], batch_first=True)

    names = ["batch", "time", "input", "hidden", "layers"]
    used = check_shape_contract(
        make_gru, make_x, ("batch time hidden", "layers*dirs batch hidden"), sizes=names
    )
    assert used["dirs"] == 1
    # a built module: its num_layers and bidirectional decide
    built = nn.GRU(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    used = check_shape_contract(
        built,
        lambda s: torch.randn(s["batch"], s["time"], 3),
        ("batch time 10", "layers*dirs batch 5"),
        sizes=["batch", "time"],
    )
    assert (used["layers"], used["dirs"], used["layers*dirs"]) == (2, 2, 4)


def test_given_sizes_the_model_does_not_have_are_named_in_the_failure():
    sizes = distinct_sizes(["batch", "time", "input", "hidden", "layers", "layers*dirs"])  # dirs = 2
    gru = nn.GRU(sizes["input"], sizes["hidden"], num_layers=sizes["layers"], batch_first=True)
    with pytest.raises(
        CheckFailed,
        match=r"note: the sizes say dirs = 2 \(the model has 1\), from model \(GRU\): a correct model fails",
    ):
        check_shape_contract(gru, make_x, (None, "layers*dirs batch hidden"), sizes=sizes)


class DictTagger(nn.Module):
    """Returns a dict, as many real models do: per-step logits and the last state."""

    def __init__(self, sizes, swap: bool = False):
        super().__init__()
        self.swap = swap
        self.rnn = nn.GRU(sizes["input"], sizes["hidden"], batch_first=True)
        self.head = nn.Linear(sizes["hidden"], sizes["classes"])

    def forward(self, x):
        out, h_n = self.rnn(x)
        logits = self.head(out)
        return {"logits": logits.transpose(0, 1) if self.swap else logits, "h_n": h_n, "steps": x.shape[1]}


def test_a_dict_result_is_checked_key_by_key_and_unnamed_keys_are_left_alone():
    expected = {"logits": "batch time classes", "h_n": "layers*dirs batch hidden"}
    names = ["batch", "time", "input", "hidden", "classes"]
    make = lambda s: torch.randn(s["batch"], s["time"], s["input"])  # noqa: E731
    check_shape_contract(lambda s: DictTagger(s), make, expected, sizes=names)
    with pytest.raises(
        CheckFailed, match=r"result\['logits'\] has shape(.|\n)*swapped: batch and time"
    ) as info:
        check_shape_contract(lambda s: DictTagger(s, swap=True), make, expected, sizes=names)
    assert "result['h_n']" not in str(info.value).split("result['logits']")[1].split("\n")[0]
    with pytest.raises(
        CheckFailed, match=r"result has no key 'state' \(its keys: \['logits', 'h_n', 'steps'\]\)"
    ):
        check_shape_contract(lambda s: DictTagger(s), make, {"state": "batch hidden"}, sizes=names)


@dataclasses.dataclass
class TaggerOutput:
    """An output record, as many models return (a stranger's repro: every check said it 'holds no tensor')."""

    logits: torch.Tensor
    hidden: torch.Tensor


class RecordTagger(nn.Module):
    def __init__(self, i: int = 6, h: int = 8, c: int = 4) -> None:
        super().__init__()
        self.rnn, self.head = nn.GRU(i, h, batch_first=True), nn.Linear(h, c)

    def forward(self, x: torch.Tensor) -> TaggerOutput:
        out, h = self.rnn(x)
        return TaggerOutput(self.head(out), h)


def test_a_dataclass_output_is_read_field_by_field():
    from rnnshapes.testing import check_batch_independence, check_causal, check_state_dict_roundtrip

    x = torch.randn(4, 10, 6)
    check_batch_independence(RecordTagger(), x)  # the first field, logits
    check_causal(RecordTagger(), x)
    check_state_dict_roundtrip(RecordTagger(), RecordTagger, x)  # every field compared
    sizes = ["batch", "time", "input", "hidden", "classes"]

    def build(s):
        return RecordTagger(s["input"], s["hidden"], s["classes"])

    def inputs(s):
        return torch.randn(s["batch"], s["time"], s["input"])

    check_shape_contract(build, inputs, {"logits": "batch time classes"}, sizes=sizes)
    check_shape_contract(build, inputs, ("batch time classes", "1 batch hidden"), sizes=sizes)
    with pytest.raises(CheckFailed, match=r"result\.logits has shape"):
        check_shape_contract(build, inputs, {"logits": "batch time hidden"}, sizes=sizes)


@dataclasses.dataclass
class PartlyFilled:
    logits: torch.Tensor
    attention: torch.Tensor = dataclasses.field(init=False)  # set only when asked for


def test_a_record_field_never_set_is_skipped_and_a_contract_of_the_wrong_form_names_the_fields():
    from rnnshapes.testing import check_batch_independence

    class Model(nn.Module):
        def __init__(self, i: int = 6, c: int = 4) -> None:
            super().__init__()
            self.rnn, self.head = nn.GRU(i, 8, batch_first=True), nn.Linear(8, c)

        def forward(self, x: torch.Tensor) -> PartlyFilled:
            return PartlyFilled(self.head(self.rnn(x)[0]))

    check_batch_independence(Model(), torch.randn(3, 5, 6))
    sizes = ["batch", "time", "input", "classes"]

    def build(s):
        return Model(s["input"], s["classes"])

    def inputs(s):
        return torch.randn(s["batch"], s["time"], s["input"])

    with pytest.raises(
        CheckFailed, match=r"result is PartlyFilled, a record with the fields \['logits'\].*in a dict"
    ):
        check_shape_contract(build, inputs, "batch time classes", sizes=sizes)
    with pytest.raises(
        CheckFailed, match=r"result \(PartlyFilled\) has no field 'logit' \(its fields: \['logits'\]\)"
    ):
        check_shape_contract(build, inputs, {"logit": "batch time classes"}, sizes=sizes)
