"""A one-line text picture of a curve. Torch-free: the pytest plugin uses it in its reports."""

import math
from collections.abc import Iterable

BARS = "▁▂▃▄▅▆▇█"
"""The eight bar heights, lowest first."""

ASCII_BARS = "_.-:=+*#"
"""The same eight heights in plain ASCII, for terminals that cannot print block characters."""

FLAT = 1e-4
"""A curve whose spread (max - min) is at most this fraction of its largest magnitude is drawn flat: the numbers
printed beside it (4 significant digits) cannot show such a change, and a picture of a slope would tell a run
that did not learn to train longer."""

NON_FINITE = "!"
"""What a NaN or infinite value is drawn as."""


def sparkline(values: Iterable[float], *, width: int = 60, ascii: bool = False) -> str:
    """Draw ``values`` as one line of bars, lowest value lowest bar, scaled between their min and max.

    Args:
        values: the curve (for example a metric per evaluation). NaN and infinite values are drawn as ``!``.
        width: the most characters to use; a longer curve is cut into ``width`` equal runs of consecutive
            values and each run is drawn as its mean (non-finite values count as such when the run has no
            finite value).
        ascii: use ``_.-:=+*#`` instead of the Unicode block characters.

    Returns:
        The line; empty for an empty curve. A constant curve, or one whose spread is at most ``FLAT`` of its
        largest magnitude, is drawn at mid height.

    Example:
        >>> sparkline([0, 1, 2, 3, 4, 5, 6, 7])
        '▁▂▃▄▅▆▇█'
    """
    if width < 1:
        raise ValueError(f"sparkline width must be >= 1, got {width}")
    points = [float(v) for v in values]
    if len(points) > width:
        points = _downsample(points, width)
    finite = [v for v in points if math.isfinite(v)]
    if not finite:
        return NON_FINITE * len(points)
    bars = ASCII_BARS if ascii else BARS
    low, high = min(finite), max(finite)
    span = high - low
    if span <= FLAT * max(abs(low), abs(high)):  # float noise on a flat curve is no slope
        span = 0.0
    top = len(bars) - 1
    out = []
    for v in points:
        if not math.isfinite(v):
            out.append(NON_FINITE)
        elif span == 0:
            out.append(bars[top // 2])
        else:
            out.append(bars[round((v - low) / span * top)])
    return "".join(out)


def _downsample(points: list[float], width: int) -> list[float]:
    n = len(points)
    result = []
    for k in range(width):
        run = points[k * n // width : (k + 1) * n // width]
        finite = [v for v in run if math.isfinite(v)]
        result.append(sum(finite) / len(finite) if finite else math.nan)
    return result


def describe_curve(values: Iterable[float], *, width: int = 60, ascii: bool = False) -> str:
    """``sparkline`` plus the first, best-placed and last numbers: ``▁▃▅█  0.100 -> 0.900 (min 0.1, max 0.9)``."""
    points = [float(v) for v in values]
    if not points:
        return "(no points)"
    finite = [v for v in points if math.isfinite(v)]
    text = f"{sparkline(points, width=width, ascii=ascii)}  {points[0]:.4g} -> {points[-1]:.4g}"
    if finite:
        text += f" (min {min(finite):.4g}, max {max(finite):.4g}, {len(points)} points)"
    return text
