"""The messages of a tensor on another device or of another dtype than the weights that will read it (guard's
check of one layer's call; shapecheck leaves devices and dtypes to the forward, which may move or cast)."""

from torch import Tensor

from ._messages import _describe
from ._specs import Context


def _weight_name(ctx: Context, ref_name: str) -> str:
    """``self.weight_ih_l0`` as the model's path under guard (``rnn.weight_ih_l0``)."""
    if ctx.label is not None and ref_name.startswith("self."):
        path = ctx.label.partition(" ")[0]
        return ref_name.replace("self.", f"{path}.", 1)
    return ref_name


def device_message(ctx: Context, arg: str, t: Tensor, ref_name: str, ref: Tensor) -> str:
    return "\n".join(
        [
            f"{ctx.where}: argument '{arg}' is on the wrong device.",
            f"  expected: {ref.device} (where {_weight_name(ctx, ref_name)} is)",
            f"  actual:   {_describe(t)}",
            f"  hint:     [device] every tensor of the call must be on one device: move the model with "
            f"model.to(device) or the input with {arg}.to(device) (only 'lengths' may stay on the CPU).",
        ]
    )


def dtype_message(ctx: Context, arg: str, t: Tensor, ref_name: str, ref: Tensor) -> str:
    want = str(ref.dtype).rpartition(".")[2]
    return "\n".join(
        [
            f"{ctx.where}: argument '{arg}' has a different dtype from the weights.",
            f"  expected: {want} (the dtype of {_weight_name(ctx, ref_name)})",
            f"  actual:   {_describe(t)}",
            f"  hint:     [dtype] convert the input with {arg}.to({ref.dtype}) or the model with "
            f"model.to({t.dtype}).",
        ]
    )
