"""check_state_dict_roundtrip and check_device_parity (CUDA parts run only where CUDA is)."""

import re

import pytest
import torch
from rnn_zoo import H_IN, HIDDEN, PackedClassifier, Tagger, features
from torch import nn

from rnnshapes.testing import (
    CheckFailed,
    DeviceUnavailable,
    VacuousCheckWarning,
    check_device_parity,
    check_state_dict_roundtrip,
    tf32_disabled,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


class PlainAttribute(nn.Module):
    """BUG: a learned scale kept as a plain tensor attribute: not in state_dict, lost on save."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True)
        self.scale = torch.randn(HIDDEN)

    def forward(self, x):
        return self.rnn(x)[0] * self.scale


class ListOfLayers(nn.Module):
    """BUG: layers in a Python list: invisible to state_dict (and to .parameters(), .to(), ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = [nn.GRU(H_IN, HIDDEN, batch_first=True)]

    def forward(self, x):
        return self.layers[0](x)[0]


def test_roundtrip_passes_for_a_correct_model():
    check_state_dict_roundtrip(Tagger(), Tagger, features())


def test_a_plain_tensor_attribute_is_lost_on_save_and_named():
    with pytest.raises(
        CheckFailed,
        match=r"state_dict round trip failed: the reloaded model gives different outputs\.\n"
        r"hint: the state_dict does not hold self\.scale, so the loaded model keeps make_model\(\)'s own "
        r"values there(.|\n)*state the state_dict does not hold:\n"
        r"  self\.scale: Tensor\(float32, shape \(5,\)\), a plain attribute\n",
    ) as info:
        check_state_dict_roundtrip(PlainAttribute(), PlainAttribute, features())
    message = str(info.value)
    assert "elements differ between the loaded model's and the original's" in message
    assert "rnn.weight_ih_l0" in message


def test_modules_in_a_python_list_are_lost_on_save_and_named():
    with pytest.raises(
        CheckFailed,
        match=r"self\.layers: a plain list of 1 module\(s\) \(GRU\), not an nn\.ModuleList(.|\n)*"
        r"state_dict keys saved \(0\): \[\]",
    ):
        check_state_dict_roundtrip(ListOfLayers(), ListOfLayers, features())


class Attention(nn.Module):
    """BUG: the attention query is a plain tensor attribute and a nested module's scale a non-persistent buffer;
    a dict of tensors besides."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True)
        self.query = torch.randn(HIDDEN)
        self.pool = nn.Module()
        self.pool.register_buffer("scale", torch.rand(1) + 0.5, persistent=False)
        self.extra = {"bias": torch.randn(1)}

    def forward(self, x):
        out = self.rnn(x)[0]
        weights = (out @ self.query).softmax(-1) * self.pool.scale + self.extra["bias"]
        return (weights.unsqueeze(-1) * out).sum(1)


def test_every_kind_of_state_outside_the_state_dict_is_named_where_it_lives():
    with pytest.raises(CheckFailed, match=r"hint: the state_dict does not hold self\.query, ") as info:
        check_state_dict_roundtrip(Attention(), Attention, features())
    message = str(info.value)
    assert "  self.query: Tensor(float32, shape (5,)), a plain attribute\n" in message
    assert "  self.extra: a plain dict of 1 tensor(s) not registered as parameters or buffers\n" in message
    assert (
        "  self.pool.scale: Tensor(float32, shape (1,)), a buffer registered with persistent=False\n"
        in message
    )
    assert len(message.splitlines()) <= 25


def test_a_fresh_model_of_another_configuration_does_not_load():
    with pytest.raises(CheckFailed, match=r"does not load into make_model\(\)(.|\n)*size mismatch"):
        check_state_dict_roundtrip(Tagger(), lambda: Tagger(bidirectional=True), features())


def test_a_vacuous_roundtrip_warns():
    def same_seed():
        torch.manual_seed(1)
        return Tagger()

    with pytest.warns(VacuousCheckWarning, match="outputs already equal the original's before loading"):
        check_state_dict_roundtrip(same_seed(), same_seed, features())


def test_every_tensor_of_the_result_is_compared_with_lengths_input():
    x, lengths = features(), torch.tensor([4, 2, 3])
    check_state_dict_roundtrip(PackedClassifier(), PackedClassifier, (x, lengths))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")
def test_device_parity_without_cuda_raises_device_unavailable():
    with pytest.raises(DeviceUnavailable, match=r"CUDA not available: torch.cuda.is_available\(\) is False"):
        check_device_parity(Tagger(), features())


def test_device_parity_cpu_against_cpu_passes_with_grads():
    check_device_parity(Tagger(), features(), device="cpu")
    check_device_parity(PackedClassifier(), (features(), torch.tensor([4, 2, 3])), device="cpu", grads=False)


class Drifting(nn.Module):
    """Each copy of it computes another result (stands for device-dependent code: the check runs one copy per
    device), the same on every call; records the TF32 flags it saw."""

    calls = 0  # on the class: shared by the deep copies the check makes
    seen_flags: tuple[bool, bool] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(H_IN, 2)

    def forward(self, x):
        if "factor" not in self.__dict__:  # a copy's first call: the check's second copy is the other device
            Drifting.calls += 1
            self.factor = 2.0 if Drifting.calls % 3 == 2 else 1.0
        Drifting.seen_flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        return self.lin(x) * self.factor


def test_device_parity_failure_names_outputs_and_grads_and_restores_tf32():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    try:
        with pytest.raises(
            CheckFailed, match=r"device parity failed: cpu and cpu disagree \(TF32 off\)"
        ) as info:
            check_device_parity(Drifting(), features(), device="cpu")
        assert Drifting.seen_flags == (False, False)  # TF32 was off inside the check
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
        message = str(info.value)
        assert message.splitlines()[1].startswith("hint: differences of ~1e-6 are float rounding")
        assert "\nresult:\n  24 of 24 elements differ between cpu and cpu" in message  # outputs first
        assert "\ngrad of lin.bias:\n" in message and "\ngrad of lin.weight:\n" in message
        assert re.search(
            r"\n\.\.\. and 1 more tensors \(largest \|difference\|\): grad of input 0 \([\d.]+\)$", message
        )
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_tf32_disabled_restores_after_an_exception():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with pytest.raises(KeyError), tf32_disabled():
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)
        raise KeyError
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_device_parity_refuses_active_dropout_with_grads():
    model = nn.GRU(H_IN, HIDDEN, num_layers=2, dropout=0.3, batch_first=True)
    with pytest.raises(ValueError, match=r"dropout is random: \['model \(p=0.3\)'\]"):
        check_device_parity(model, features(), device="cpu")
    check_device_parity(model, features(), device="cpu", grads=False)


@needs_cuda
def test_device_parity_on_cuda_for_gru_lstm_and_packed_inputs():
    check_device_parity(Tagger(), features())
    check_device_parity(nn.LSTM(H_IN, HIDDEN, num_layers=2, bidirectional=True), features().transpose(0, 1))
    check_device_parity(PackedClassifier(), (features(), torch.tensor([4, 2, 3])))


@needs_cuda
def test_parity_holds_with_tf32_enabled_outside_because_the_check_turns_it_off():
    # Measured on an H200 (torch 2.11): with TF32 on, this GRU's outputs differ from the CPU's by 2.7e-4;
    # with TF32 off by 1.5e-7, and its weight gradients by up to 2e-5 (within grad_atol).
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    try:
        check_device_parity(nn.GRU(128, 512), torch.randn(40, 16, 128))
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@needs_cuda
def test_device_dependent_code_fails_parity_on_cuda():
    class DeviceDependent(Tagger):
        def forward(self, x):
            out, h = super().forward(x)
            return out + (0.1 if out.is_cuda else 0.0), h

    with pytest.raises(CheckFailed, match=r"cpu and cuda disagree"):
        check_device_parity(DeviceDependent(), features())


class AlwaysDropout(nn.Module):
    """tacotron2's prenet: dropout on in eval mode too, by design (F.dropout(..., training=True))."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(H_IN, HIDDEN, batch_first=True)

    def forward(self, x):
        return self.rnn(nn.functional.dropout(x, 0.5, training=True))[0]


@pytest.mark.parametrize("grads", [False, True])
def test_a_model_random_in_the_checks_mode_is_refused_not_blamed_on_its_state_or_device(grads):
    with pytest.raises(
        ValueError, match=r"check_device_parity: the model gives different results on the same input"
    ):
        check_device_parity(AlwaysDropout(), features(), device="cpu", grads=grads)
    with pytest.raises(ValueError, match=r"check_state_dict_roundtrip: the model gives different results"):
        check_state_dict_roundtrip(AlwaysDropout(), AlwaysDropout, features())


def test_lazy_modules_not_run_yet_are_refused_with_what_to_do():
    model = nn.Sequential(nn.Flatten(), nn.LazyLinear(3))
    x = features()
    for check in (
        lambda: check_device_parity(model, x, device="cpu"),
        lambda: check_state_dict_roundtrip(model, lambda: nn.Sequential(nn.Flatten(), nn.LazyLinear(3)), x),
    ):
        with pytest.raises(
            ValueError, match=r"1 is a lazy module not run yet.*run the model once on the inputs"
        ):
            check()
    model(x)  # materialised: the checks run
    check_device_parity(model, x, device="cpu")
