"""Compact failure messages: the worst differences in full, the rest counted on one line."""

import math
from dataclasses import dataclass

import torch
from torch import Tensor

SHOWN = 3
"""How many differing tensors (examples, variants, gradients) a message shows in full."""

ELEMENTS = 3
"""How many differing elements it shows for each of them."""


@dataclass(frozen=True)
class Problem:
    """One differing tensor: ``label`` names it, ``detail`` is what ``compare`` said, ``score`` the largest
    |difference| (inf for a shape mismatch or a NaN on one side), which orders the problems worst first."""

    label: str
    detail: str
    score: float
    short: str = ""  # the label in the line that counts the rest (default: the label)
    rank: int = 0  # problems of a lower rank come first (outputs before gradients), then the worst first


def largest_difference(got: Tensor, want: Tensor) -> float:
    if tuple(got.shape) != tuple(want.shape):
        return math.inf
    a = got.detach().to("cpu", torch.float64)
    b = want.detach().to("cpu", torch.float64)
    diff = torch.where(torch.isnan(a) & torch.isnan(b), torch.zeros_like(a), (a - b).abs())
    return float(torch.nan_to_num(diff, nan=math.inf).max()) if diff.numel() else 0.0


def worst(problems: list[Problem], shown: int = SHOWN, noun: str = "more") -> list[str]:
    """The ``shown`` worst problems in full (label line, then the detail indented), then one line naming the
    rest with their largest |difference|."""
    ranked = sorted(problems, key=lambda p: (p.rank, -p.score))
    lines: list[str] = []
    for p in ranked[:shown]:
        lines.append(p.label)
        lines += [f"  {line}" for line in p.detail.splitlines()]
    rest = ranked[shown:]
    if rest:
        names = ", ".join(f"{p.short or p.label.rstrip(':')} ({p.score:.2g})" for p in rest[:4])
        if len(rest) > 4:
            names += f", ... ({len(rest) - 4} not named)"
        lines.append(f"... and {len(rest)} {noun} (largest |difference|): {names}")
    return lines
