"""CPU/CUDA parity of the lesson models (TF32 off inside the check): skipped visibly without CUDA."""

import pytest
import torch

from rnnshapes import lessons


@pytest.mark.parametrize("name", ["names", "char-rnn", "hello-sequence"])
def test_lesson_model_gives_the_same_outputs_and_gradients_on_cuda(rnn_checks, name):
    torch.manual_seed(0)
    model = lessons.get(name).build_model()
    if name == "names":
        inputs = (torch.randint(1, 128, (7, 11)), torch.tensor([11, 3, 7, 1, 9, 11, 5]))
    elif name == "char-rnn":
        inputs = (torch.randint(0, 38, (5, 13)),)
    else:
        inputs = (torch.nn.functional.one_hot(torch.randint(0, 5, (3, 6)), 5).float(),)
    rnn_checks.check_device_parity(model, inputs, device="cuda")
