"""On/off: RNNSHAPES_CHECKS=0, the checks() context manager, and torch.compile."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from jaxtyping import Float
from torch import Tensor

from rnnshapes import ShapeError, checks, checks_enabled, shapecheck

from ._models import Seq


@shapecheck
def first_row(x: Float[Tensor, "batch feature"]) -> Float[Tensor, " feature"]:
    return x[0]


def test_context_manager_turns_checks_off_and_restores_them():
    assert checks_enabled()
    with checks(False):
        assert not checks_enabled()
        assert first_row(torch.zeros(2, 3, 4)).shape == (3, 4)  # unchecked: runs
    assert checks_enabled()
    with pytest.raises(ShapeError):
        first_row(torch.zeros(2, 3, 4))


def test_context_manager_restores_after_an_error():
    with pytest.raises(RuntimeError), checks(False):
        raise RuntimeError
    assert checks_enabled()


def test_env_var_removes_the_checks_entirely():
    code = textwrap.dedent(
        """
        import torch
        from jaxtyping import Float
        from torch import Tensor
        from rnnshapes import shapecheck, checks_enabled

        def f(x: Float[Tensor, "batch"]) -> Float[Tensor, "batch"]:
            return x[:1]

        g = shapecheck(f)
        assert g is f, "with RNNSHAPES_CHECKS=0 the original function is returned: zero cost"
        assert not checks_enabled()
        print("ok")
        """
    )
    env = {"RNNSHAPES_CHECKS": "0", "PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_torch_compile_no_false_errors_and_still_catches_a_wrong_input():
    torch._dynamo.reset()
    model = Seq("gru", layers=1, bidirectional=False)
    compiled = torch.compile(model, backend="eager")
    x = torch.randn(2, 4, 5)
    eager_out, _ = model(x)
    compiled_out, _ = compiled(x)
    torch.testing.assert_close(compiled_out, eager_out)
    compiled(torch.randn(3, 6, 5))  # another valid shape: recompiles, no false error
    with pytest.raises(ShapeError, match=r"\[hidden-batch-first\]"):
        compiled(x, torch.zeros(2, 1, 7))


def test_checked_models_import_and_run_without_loading_torch_dynamo():
    # torch.compiler.disable imports torch._dynamo (about a second, in every process that imports the models):
    # the checks apply it at their first compiled call, never at import or in eager calls
    code = textwrap.dedent(
        """
        import sys
        import torch
        from rnnshapes.models import HelloRNN

        HelloRNN()(torch.randn(2, 6, 5))
        print("torch._dynamo" in sys.modules)
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stdout + out.stderr
