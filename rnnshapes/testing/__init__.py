"""Plain check functions for your own recurrent models (no pytest needed; each failure is an AssertionError).

Every check takes the model and example inputs, calls the model, and raises :class:`CheckFailed` (an
``AssertionError``) with a message that says what differed, where (indices) and by how much::

    from rnnshapes.testing import check_batch_independence, check_causal

    check_batch_independence(model, x)                  # every example i, every other example j
    check_causal(model, x, time_axis=1)                 # every step t, every later step t' > t
    check_every_parameter_learns(model, x)              # no parameter without a gradient

One convention for every check:

* ``inputs``: one object (a tensor, a PackedSequence) is the single positional argument of the model; a tuple
  or list is unpacked into positional arguments: ``x``, ``(x, lengths)``, ``(x, h0)``.
* ``call(model, *inputs) -> result``: how to run the model (default ``model(*inputs)``); e.g. pack inside it.
* ``output(result) -> tensor``: which tensor to look at (default: the first tensor of the result, depth
  first, so ``out`` of ``out``, ``(out, h_n)`` and ``(out, (h, c))``; a PackedSequence is padded back).
* ``batch_axis`` / ``time_axis`` (and ``output_batch_axis`` / ``output_time_axis``): where batch and time are;
  batch_first tensors have ``0, 1``, time-first ones ``1, 0``, a hidden state ``layers*dirs batch hidden``
  has batch at 1.

A check whose inputs cannot show the fault it looks for (a batch of 1, one time step, no padding) passes with a
:class:`VacuousCheckWarning`, which pytest lists in its warnings summary and CI can turn into an error
(``-W error::rnnshapes.testing.VacuousCheckWarning``).

Integer inputs (token indices) cannot be differentiated: the gradient checks then take gradients with respect
to the output of the model's first ``nn.Embedding``, captured with a forward hook (``wrt=`` picks another input
or module).
"""

from ._errors import CheckFailed as CheckFailed
from ._errors import ConvergenceFailed as ConvergenceFailed
from ._errors import DeviceUnavailable as DeviceUnavailable
from ._errors import VacuousCheckWarning as VacuousCheckWarning
from ._gradients import check_batch_independence as check_batch_independence
from ._gradients import check_causal as check_causal
from ._influence import InfluenceMatrix as InfluenceMatrix
from ._learning import check_every_parameter_learns as check_every_parameter_learns
from ._padding import check_packed_matches_unbatched as check_packed_matches_unbatched
from ._padding import check_padding_invariance as check_padding_invariance
from ._shapes import check_shape_contract as check_shape_contract
from ._shapes import coincidences as coincidences
from ._shapes import distinct_sizes as distinct_sizes
from ._sparkline import sparkline as sparkline
from ._state import check_device_parity as check_device_parity
from ._state import check_state_dict_roundtrip as check_state_dict_roundtrip
from ._state import cuda_unavailable_reason as cuda_unavailable_reason
from ._state import tf32_disabled as tf32_disabled
from ._training import ConvergenceResult as ConvergenceResult
from ._training import check_converges as check_converges
from ._training import check_init_loss as check_init_loss
from ._training import check_overfits_batch as check_overfits_batch

__all__ = [
    "CheckFailed",
    "ConvergenceFailed",
    "ConvergenceResult",
    "DeviceUnavailable",
    "VacuousCheckWarning",
    "InfluenceMatrix",
    "check_batch_independence",
    "check_causal",
    "check_converges",
    "check_device_parity",
    "check_every_parameter_learns",
    "check_init_loss",
    "check_overfits_batch",
    "check_packed_matches_unbatched",
    "check_padding_invariance",
    "check_shape_contract",
    "check_state_dict_roundtrip",
    "coincidences",
    "cuda_unavailable_reason",
    "distinct_sizes",
    "sparkline",
    "tf32_disabled",
]
