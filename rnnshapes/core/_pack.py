"""`pack`: ``pack_padded_sequence`` with its arguments checked and the sorting done for you."""

from jaxtyping import Int, Shaped
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from ._checks import check_value
from ._errors import ShapeError
from ._specs import Context, parse_annotation
from ._vocab import seq_axes

_PADDED = parse_annotation(Shaped[Tensor, "*seq"] | Shaped[Tensor, "*seq _features"])
_LENGTHS = parse_annotation(Int[Tensor, " batch"])


def pack(
    x: Shaped[Tensor, "*seq"] | Shaped[Tensor, "*seq _features"],
    lengths: Int[Tensor, " batch"],
    *,
    batch_first: bool = True,
) -> PackedSequence:
    """Pack a padded batch (``enforce_sorted=False``: no manual sorting), checking ``lengths`` first.

    Args:
        x: the padded batch.
        lengths: one length per sequence, on the CPU (``pack_padded_sequence`` reads them on the host).
        batch_first: the layout of ``x``.

    Inputs:
        - **x**: ``(N, L)`` indices or ``(N, L, H_in)`` features if ``batch_first``, else ``(L, N, ...)``.
        - **lengths**: ``(N,)`` integers in ``1..L``, on the CPU.

    Outputs:
        - a ``PackedSequence`` whose ``data`` is ``(total,)`` or ``(total, H_in)``, total = ``sum(lengths)``.

    where N = batch size, L = sequence length (time).

    Raises:
        ShapeError: lengths not 1-D integers, not one per sequence, not on the CPU, or outside ``1..L``.
    """
    ctx = Context("rnnshapes.pack", None, {}, {})
    ctx.batch_first = batch_first
    assert _PADDED is not None and _LENGTHS is not None
    check_value(_PADDED, x, "x", ctx)
    check_value(_LENGTHS, lengths, "lengths", ctx)
    if lengths.device.type != "cpu":
        raise ShapeError(
            "rnnshapes.pack(): argument 'lengths' is on the wrong device.\n"
            f"  expected: cpu\n  actual:   {tuple(lengths.shape)} on {lengths.device}\n"
            "  hint:     [lengths-device] pack_padded_sequence reads the lengths on the host: pass lengths.cpu() "
            "(better: keep lengths on the CPU in your collate function; only the padded data goes to the GPU)."
        )
    time = x.shape[seq_axes(batch_first).index("time")]
    lo, hi = (int(v) for v in (lengths.min(), lengths.max())) if lengths.numel() else (1, 1)
    if lo < 1 or hi > time:
        raise ShapeError(
            "rnnshapes.pack(): argument 'lengths' holds impossible lengths.\n"
            f"  expected: every length in 1..time={time}\n  actual:   min {lo}, max {hi}\n"
            "  hint:     [lengths-range] a length longer than the padded time axis means x and lengths do not "
            "belong together (or x is in the other layout); a zero length cannot be packed: drop empty "
            "sequences before batching."
        )
    return pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
