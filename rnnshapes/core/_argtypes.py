"""Validated argument types shared by the command line and the pytest plugin's options (torch-free)."""

import argparse
from collections.abc import Callable


def int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` accepting whole numbers ``>= low`` (and ``<= high``), with a message that says so."""
    wanted = f"a whole number >= {low}" if high is None else f"a whole number from {low} to {high}"

    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value}")
        return value

    check.__name__ = f"int_at_least_{low}"
    return check


def float_between(low: float, high: float) -> Callable[[str], float]:
    """An argparse ``type`` accepting numbers in ``[low, high]``."""

    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a number between {low:g} and {high:g}, got {value:g}")
        return value

    return check


def choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    """An argparse ``type`` accepting one of ``choices`` (usable for ini values too, unlike ``choices=``)."""

    def check(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"invalid choice {text!r} (choose from {', '.join(choices)})")
        return text

    return check
