"""Padding checks: a padded batch gives each sequence the result it gets alone, whatever the padding."""

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

import torch
from torch import Tensor

from ._calls import (
    CallFn,
    OutputFn,
    compare,
    default_call,
    describe,
    fail,
    lengths_list,
    mode,
    output_name,
    refuse_meta,
    selector,
)
from ._compact import ELEMENTS, Problem, largest_difference, worst
from ._errors import warn_vacuous

Auto = Literal["auto"]


def _validate(x: Tensor, lengths: list[int], batch_axis: int, time_axis: int) -> tuple[int, int]:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a padded tensor, got {describe(x)}; pack inside call=... instead")
    if batch_axis % x.dim() == time_axis % x.dim():
        raise ValueError(f"batch_axis and time_axis are the same axis ({batch_axis}, {time_axis})")
    n, t = int(x.shape[batch_axis]), int(x.shape[time_axis])
    if len(lengths) != n:
        raise ValueError(
            f"lengths has {len(lengths)} entries but x {describe(x)} has batch {n} (axis {batch_axis})"
        )
    bad = [(i, L) for i, L in enumerate(lengths) if not 1 <= L <= t]
    if bad:
        raise ValueError(f"lengths must be in 1..time={t}; these are not (example, length): {bad}")
    return n, t


def _time_axis_of(
    out: Tensor, spec: int | None | Auto, time_axis: int, batch_axis: int, ok: set[int]
) -> int | None:
    """The output's time axis: ``spec`` if given; for "auto" the input's ``time_axis`` when the output has that
    axis, it is not the batch axis and its size is one a per-step output would have (``ok``)."""
    if spec != "auto":
        return spec
    if out.dim() < 2 or not -out.dim() <= time_axis < out.dim():
        return None
    if time_axis % out.dim() == batch_axis % out.dim():
        return None
    return time_axis if int(out.shape[time_axis]) in ok else None


def _example(
    out: Tensor, batch_axis: int, i: int, time_axis: int | None, length: int, *, example: int | None = None,
    rated: bool = False,
) -> Tensor:  # fmt: skip
    """Example ``i`` of ``out`` (``example``: its index in the batch, for messages), cut to ``length`` steps."""
    one = out.narrow(batch_axis, i, 1)
    if time_axis is not None:
        if length > int(one.shape[time_axis]):
            k = i if example is None else example
            have = f"the output {describe(out)} has {int(one.shape[time_axis])} steps along axis {time_axis}"
            if rated:
                raise ValueError(
                    f"output_lengths gives example {k} {length} valid output steps, but {have}: check its formula "
                    "(a front-end of kernel k and stride s without padding gives (lengths - k) // s + 1 steps)"
                )
            raise ValueError(f"{have}, fewer than the {length} valid steps of example {k}: {_RATE}")
        one = one.narrow(time_axis, 0, length)
    return one


_RATE = (
    "the output's steps are not the input's (a strided convolution or pooling before the recurrent layer). "
    "Pass output_lengths=lambda lengths: <each example's valid output steps> (lengths // 2 for a stride-2 "
    "front-end that reads no step past the end), and output_time_axis=<the output's time axis> unless it is "
    "time_axis; the check then compares those steps"
)


def _output_lengths(output_lengths: Any, lengths: Any, n: int) -> list[int] | None:
    """The valid output steps per example that ``output_lengths(lengths)`` gives (None when not given)."""
    if output_lengths is None:
        return None
    found = lengths_list(output_lengths(lengths))
    if len(found) != n or any(v < 0 for v in found):
        raise ValueError(f"output_lengths(lengths) must give {n} counts >= 0, one per example; got {found}")
    return found


def _rated_time_axis(out: Tensor, spec: int | None | Auto, time_axis: int, batch_axis: int, most: int) -> int:
    """The output's time axis when ``output_lengths`` is given: ``spec``, or for "auto" ``time_axis``."""
    ot = time_axis if spec == "auto" else spec
    if ot is None or not -out.dim() <= ot < out.dim() or ot % out.dim() == batch_axis % out.dim():
        raise ValueError(
            f"output_lengths needs the output's time axis: output_time_axis={spec!r} is none of {describe(out)}'s "
            "axes other than its batch axis"
        )
    if int(out.shape[ot]) < most:
        raise ValueError(
            f"the output {describe(out)} has {int(out.shape[ot])} steps along axis {ot}, fewer than the {most} "
            "valid output steps output_lengths gives: check its formula (a front-end of kernel k and stride s "
            "without padding gives (lengths - k) // s + 1 steps), or pass output_time_axis=<the output's time axis>"
        )
    return ot


def _lengths_arg(lengths: Any, keep: list[int]) -> Any:
    """``lengths`` restricted to the examples ``keep``, in the type it came in (tensor or list)."""
    if isinstance(lengths, Tensor):
        return lengths[torch.tensor(keep, dtype=torch.long)]
    return [lengths_list(lengths)[k] for k in keep]


def check_packed_matches_unbatched(
    model: Any,
    x: Tensor,
    lengths: Any,
    *,
    call: CallFn | None = None,
    output: OutputFn | None = None,
    batch_axis: int = 0,
    time_axis: int = 1,
    output_batch_axis: int | None = None,
    output_time_axis: int | None | Auto = "auto",
    output_lengths: Callable[[Any], Any] | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> None:
    """Check that running a padded batch gives every sequence the result it gets when run alone.

    Runs ``call(model, x, lengths)`` once for the padded batch, then for every example i
    ``call(model, x_i, lengths[i:i+1])`` with ``x_i`` that example alone (a batch of 1) cut to its own length,
    and compares example i's output. A model that lets padded steps into its result (no packing, no mask,
    taking ``out[:, -1]`` instead of the last valid step) fails for every example shorter than the batch.

    Per-step outputs are compared on the example's valid steps only; other outputs (logits per sequence, a
    hidden state) entirely. The model runs in eval mode (restored after).

    Args:
        model: the model.
        x: the padded batch (float features, or integer indices), batch and time along ``batch_axis`` and
            ``time_axis``.
        lengths: valid steps per example (a 1-D tensor or a list; it stays on the CPU).
        call: ``call(model, x, lengths) -> result``; default ``model(x, lengths)``. Pack here if the model
            takes a PackedSequence.
        output: ``output(result) -> tensor``; default the first tensor of the result (a PackedSequence is padded
            back).
        batch_axis, time_axis: axes of ``x`` (batch_first: 0, 1; time-first: 1, 0).
        output_batch_axis: the output's batch axis; default ``batch_axis`` (1 for ``layers*dirs batch hidden``).
        output_time_axis: the output's time axis, or None for a per-sequence output. "auto": ``time_axis``
            when the output has there the batch's time size (or the longest length) and the lone run's length,
            else the one other axis that does (all other axes alike); where the shapes differ and no axis
            does, a ValueError asks for it.
        output_lengths: ``output_lengths(lengths) -> valid output steps per example``, for an output whose
            steps are not the input's (a strided front-end: ``lambda lengths: lengths // 2``); each example is
            then compared on that many steps along the output's time axis (``time_axis`` unless
            ``output_time_axis`` says otherwise).
        atol, rtol: tolerance (a batch of 1 may use other kernels, so exact equality is not asked).

    Raises:
        CheckFailed: naming the example, its length and where (index) and by how much the outputs differ.
    """
    refuse_meta("check_packed_matches_unbatched", model, x)
    __tracebackhide__ = True
    lens = lengths_list(lengths)
    n, t = _validate(x, lens, batch_axis, time_axis)
    ob = batch_axis if output_batch_axis is None else output_batch_axis
    run = call or default_call
    select = selector(output, batch_first=ob == 0)
    if all(length == t for length in lens):
        warn_vacuous(
            f"check_packed_matches_unbatched: every length equals the padded time {t}, so the batch holds no "
            "padding that could leak into a result: the check proved nothing about padding. Give some "
            "sequences shorter lengths (and padding after them)"
        )
    out_lens = _output_lengths(output_lengths, lengths, n)
    problems: list[Problem] = []
    with mode(model, False), torch.no_grad():
        full = select(run(model, x, lengths))
        _check_batch(full, ob, n, output)
        for i, length in enumerate(lens):
            xi = x.narrow(batch_axis, i, 1).narrow(time_axis, 0, length)
            alone = select(run(model, xi, _lengths_arg(lengths, [i])))
            if out_lens is not None:  # the output runs at its own rate: compare each example's valid steps
                rt = _rated_time_axis(full, output_time_axis, time_axis, ob, max(out_lens))
                got = _example(full, ob, i, rt, out_lens[i], rated=True)
                want = _example(alone, ob, 0, rt, out_lens[i], example=i, rated=True)
                diff = compare(
                    got, want, atol=atol, rtol=rtol, got_name="the padded batch's", want_name="the lone run's",
                    limit=ELEMENTS,
                )  # fmt: skip
                if diff:
                    label = (
                        f"example {i} (length {length}, {out_lens[i]} output steps), compared on those steps:"
                    )
                    problems.append(Problem(label, diff, largest_difference(got, want), f"example {i}"))
                continue
            ot = _time_axis_of(full, output_time_axis, time_axis, ob, {t, max(lens)})
            per_step = ot is not None and alone.dim() == full.dim() and int(alone.shape[ot]) == length
            if output_time_axis == "auto" and per_step and ot is not None:  # every other axis alike too
                keep = (ot % full.dim(), ob % full.dim())
                per_step = all(full.shape[k] == alone.shape[k] for k in range(full.dim()) if k not in keep)
            if output_time_axis == "auto" and not per_step:
                ot = _other_time_axis(full, alone, ob, {t, max(lens)}, length)
                per_step = ot is not None
            elif ot is not None and not per_step:
                if alone.dim() == full.dim() and 0 < int(alone.shape[ot]) < length:
                    raise ValueError(  # fewer steps alone than its length: the output runs at another rate
                        f"check_packed_matches_unbatched: example {i} run alone ({length} steps) gives "
                        f"{describe(alone)}, {int(alone.shape[ot])} steps along output_time_axis={ot}: {_RATE}"
                    )
                detail = f"run alone its output {describe(alone)} does not have its {length} steps along "
                detail += f"output_time_axis={ot}"
                problems.append(Problem(f"example {i} (length {length}):", detail, math.inf))
                continue
            got = _example(full, ob, i, ot, length)
            diff = compare(
                got,
                alone,
                atol=atol,
                rtol=rtol,
                got_name="the padded batch's",
                want_name="the lone run's",
                limit=ELEMENTS,
            )
            if diff:
                label = f"example {i} (length {length}, of time {t}), compared on {_where(ot)}:"
                problems.append(Problem(label, diff, largest_difference(got, alone), f"example {i}"))
    if problems:
        shorter = [i for i, L in enumerate(lens) if L < t]
        bad = {int(p.label.split()[1]) for p in problems}
        raise fail(
            f"packed/padded batch does not match unbatched runs: {len(problems)} of {n} examples differ "
            f"({len(shorter)} are shorter than the padded time {t}).",
            f"{output_name(output)}, batch axis {ob}; each example of the padded batch against the same "
            "example run alone (a batch of 1, cut to its length):\n"
            + "\n".join(worst(problems, noun="more examples")),
            _packed_hint(bad, shorter),
        )


def _other_time_axis(
    full: Tensor, alone: Tensor, batch_axis: int, padded: set[int], length: int
) -> int | None:
    """For "auto": the one output axis (not the batch's) where the padded batch has the padded time and the lone
    run its length, every other axis alike (a model whose output keeps time elsewhere than its input, such as
    DeepSpeech's (batch, 1, freq, time) -> (batch, time, classes)). Where the two differ in shape and no such
    axis is found, comparing them whole would blame the padding for the shape: refused."""
    if alone.dim() != full.dim():
        return None
    b = batch_axis % full.dim()
    found = _lone_axes(full, alone, b, lambda f, a: f in padded and a == length)
    if len(found) == 1 and int(full.shape[found[0]]) != length:
        return found[0]
    if any(full.shape[k] != alone.shape[k] for k in range(full.dim()) if k != b):
        raise ValueError(
            f"check_packed_matches_unbatched: the padded batch's output {describe(full)} and an example run alone "
            f"({length} steps) {describe(alone)} differ in shape, and no single axis of the output holds the "
            "time: pass output_time_axis=<the output's time axis>, or None for one result per sequence; where "
            f"the output has fewer steps than the input, {_RATE}"
        )
    return None


def _lone_axes(one: Tensor, two: Tensor, batch: int, fits: Any) -> list[int]:
    """The axes (not ``batch``) where ``fits(one's size, two's size)`` while every other axis is alike: where
    an output's time can be, compared with another run's."""
    return [
        a
        for a in range(one.dim())
        if a != batch
        and fits(int(one.shape[a]), int(two.shape[a]))
        and all(one.shape[j] == two.shape[j] for j in range(one.dim()) if j not in (a, batch))
    ]


def _auto_time_axis(
    base: Tensor, other: Tensor, ot: int | None, ob: int, t: int, longest: int, extra: int
) -> int | None:
    """check_padding_invariance's "auto", from the original run and the one with ``extra`` more steps: the one
    axis (not the batch's) that grew by ``extra``, every other axis alike (the input's time axis, or another:
    (time, batch, classes), (batch, classes, time)); else the input's time axis ``ot`` where the output was
    padded back without total_length (the longest length's steps in both runs, a feature axis after them);
    else None: the output is compared whole."""
    if other.dim() != base.dim():
        return None
    b = ob % base.dim()
    grown = _lone_axes(base, other, b, lambda f, o: f in (t, longest) and o == f + extra)
    if len(grown) == 1:
        return grown[0]
    if grown or ot is None:
        return None
    # padded back without total_length: what it holds past each example's length is padding, not a result
    padded_back = (
        base.dim() > max(ot % base.dim(), b) + 1
        and int(base.shape[ot]) == longest
        and int(other.shape[ot]) == longest
        and base.shape == other.shape
    )
    return ot if padded_back else None


def _where(time_axis: int | None) -> str:
    return "its valid steps" if time_axis is not None else "the whole per-example output"


def _packed_hint(bad: set[int], shorter: list[int]) -> str:
    """What the examples that differ say: exactly the shorter ones point at the padding."""
    if bad and bad <= set(shorter):
        return (
            "only examples shorter than the padded time differ: padded steps leaked into their results. Pack "
            "the batch (pack_padded_sequence with the lengths, enforce_sorted=False) or mask the padded steps, "
            "and take the last VALID step (index lengths-1) or h_n instead of out[:, -1]. A model that already "
            "packs may pool over the padded time axis after pad_packed_sequence: out.mean(1) counts the padded "
            "(zero) steps; divide the sum by the lengths instead (out.sum(1) / lengths.unsqueeze(1))"
        )
    return (
        "examples without padding differ too, so it is not (only) the padding: the batch changes a result. "
        "Look for examples that mix (check_batch_independence), sorting by length without restoring the order "
        "(enforce_sorted=False unsorts for you), or a state carried over from another call"
    )


def _check_batch(out: Tensor, ob: int, n: int, output: OutputFn | None) -> None:
    if not -out.dim() <= ob < out.dim() or int(out.shape[ob]) != n:
        fits = [d for d in range(out.dim()) if int(out.shape[d]) == n]
        advice = (
            f"pass output_batch_axis={fits[0]}, the axis of size {n}"
            if len(fits) == 1
            else "set output_batch_axis (0 for (batch, classes) logits, 1 for a hidden state layers*dirs batch "
            "hidden)"
        )
        raise ValueError(
            f"{output_name(output)} {describe(out)} has no batch of {n} along output_batch_axis={ob}; {advice}, "
            "or output=... to pick another tensor"
        )


def check_padding_invariance(
    model: Any,
    x: Tensor,
    lengths: Any,
    *,
    extra: int = 3,
    pad_value: float = 0,
    scramble: bool = True,
    call: CallFn | None = None,
    output: OutputFn | None = None,
    batch_axis: int = 0,
    time_axis: int = 1,
    output_batch_axis: int | None = None,
    output_time_axis: int | None | Auto = "auto",
    output_lengths: Callable[[Any], Any] | None = None,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    seed: int = 0,
) -> None:
    """Check that more padding, or other values in the padding, do not change the results.

    Two variants are compared with the original batch, per example on its valid steps (per-step outputs) or
    entirely (per-sequence outputs):

    * ``extra`` more steps of ``pad_value`` appended along the time axis;
    * ``scramble``: the existing padded positions (steps at or after each example's length) overwritten with
      random values (random normal features, or random indices in ``0..max(x)`` for integer inputs).

    Args:
        model, x, lengths, call, output, batch_axis, time_axis, output_batch_axis, output_time_axis: as in
            :func:`check_packed_matches_unbatched`. "auto" here: ``time_axis`` when the output's size there
            grows by ``extra`` with the added padding, or stays the longest length (an output padded back
            without ``total_length``): each example is compared on its valid steps.
        output_lengths: as in :func:`check_packed_matches_unbatched` (each example's valid output steps).
        extra: how many padding steps to add (>= 1; 0 tries only the scrambled padding, for a model that
            cannot take more steps than its other inputs allow).
        pad_value: the value of the added steps.
        scramble: also overwrite the existing padding with random values.
        atol, rtol: tolerance.
        seed: seed of the random padding.

    Raises:
        CheckFailed: naming the variant, the example and where (index) and by how much the outputs differ.
    """
    refuse_meta("check_padding_invariance", model, x)
    __tracebackhide__ = True
    if extra < 0 or (extra == 0 and not scramble):
        raise ValueError(
            f"extra must be >= 1, or 0 with scramble=True (the scrambled padding only), got extra={extra}"
            + ("" if extra < 0 else " with scramble=False")
        )
    lens = lengths_list(lengths)
    n, t = _validate(x, lens, batch_axis, time_axis)
    ob = batch_axis if output_batch_axis is None else output_batch_axis
    run = call or default_call
    select = selector(output, batch_first=ob == 0)
    shape = list(x.shape)
    shape[time_axis] = extra
    padded = torch.cat([x, torch.full(shape, pad_value, dtype=x.dtype, device=x.device)], dim=time_axis)
    variants = [(f"{extra} more padding steps of value {pad_value:g} (time {t} -> {t + extra})", padded)]
    if extra == 0:
        variants = []
    if scramble and any(L < t for L in lens):
        scrambled = _scrambled(x, lens, batch_axis, time_axis, seed)
        variants.append(("the existing padding overwritten with random values", scrambled))
    if all(length == t for length in lens):
        warn_vacuous(
            f"check_padding_invariance: every length equals the padded time {t}, so there was no padding to "
            f"overwrite: only {extra} appended steps were tried. Give some sequences shorter lengths (and "
            "padding after them)"
        )
    out_lens = _output_lengths(output_lengths, lengths, n)
    problems: list[Problem] = []
    with mode(model, False), torch.no_grad():
        base = select(run(model, x, lengths))
        _check_batch(base, ob, n, output)
        ot: int | None = None
        for k, (label, xv) in enumerate(variants):
            try:
                other = select(run(model, xv, lengths))
            except Exception as e:
                e.add_note(
                    f"rnnshapes.testing.check_padding_invariance: the model raised on the variant '{label}'"
                    + (
                        "; a model that cannot take more padding steps: extra=0 tries the scrambled padding only"
                        if k == 0 and extra
                        else ""
                    )
                )
                raise
            _check_batch(other, ob, n, output)
            if out_lens is not None:
                ot = _rated_time_axis(base, output_time_axis, time_axis, ob, max(out_lens))
            elif k == 0:  # the extra-padding run decides: a per-step output grows by `extra` steps with it
                ot = _time_axis_of(base, output_time_axis, time_axis, ob, {t, max(lens)})
                if output_time_axis == "auto" and extra:
                    ot = _auto_time_axis(base, other, ot, ob, t, max(lens), extra)
            if ot is None and other.shape != base.shape:  # a per-sequence output keeps its shape
                raise ValueError(
                    f"check_padding_invariance: the output {describe(base)} changed shape with the variant "
                    f"'{label}' ({describe(other)}), and none of its axes is the input's time: {_RATE}"
                )
            for i, length in enumerate(lens):
                steps = length if out_lens is None else out_lens[i]
                rated = out_lens is not None
                got, want = (
                    _example(other, ob, i, ot, steps, rated=rated),
                    _example(base, ob, i, ot, steps, rated=rated),
                )
                diff = compare(
                    got, want, atol=atol, rtol=rtol, got_name="the variant's", want_name="the original's",
                    limit=ELEMENTS,
                )  # fmt: skip
                if diff:
                    short = f"[{label.split(' (')[0]}] example {i}"
                    problem = Problem(f"[{label}] example {i} (length {length}):", diff, 0.0, short)
                    problems.append(replace(problem, score=largest_difference(got, want)))
    if problems:
        pairs = len(variants) * n
        hint = (
            "the model reads padded steps: pack the batch (pack_padded_sequence with the lengths) or mask "
            "padded steps, and take the last VALID step (lengths-1) or h_n instead of out[:, -1]; an "
            "nn.Embedding's padding_idx alone does not stop an RNN from stepping through padding"
        )
        if not x.is_floating_point() and all(p.short.startswith("[the existing padding") for p in problems):
            hint = (
                "only overwriting the padding with other token values changes the results (more padding of "
                f"{pad_value:g} does not): if the model finds its padding by value (lengths = (x != "
                f"{pad_value:g}).sum(1)), that is right, and scramble=False checks what it promises; else "
                + hint
            )
        elif len(variants) > 1 and not any(p.short.startswith("[the existing padding") for p in problems):
            hint = (
                "only MORE padding changes the results; other values in the existing padding do not: the model "
                "does not read the padded values, it counts the padded steps. Usually a mean (or sum, or "
                "softmax) over the whole padded time axis, such as out.mean(1) after pad_packed_sequence: "
                "divide the sum over the valid steps by the lengths instead (out.sum(1) / lengths.unsqueeze(1), "
                "with the padded steps zero), or mask them; or a term that depends on the padded length itself"
            )
        raise fail(
            f"padding changes the results: {len(problems)} of {pairs} (variant, example) pairs differ.",
            f"{output_name(output)}, batch axis {ob}; each example against the same example of the original "
            f"batch, on {_where(ot)}:\n" + "\n".join(worst(problems, noun="more pairs")),
            hint,
        )


def _scrambled(x: Tensor, lens: list[int], batch_axis: int, time_axis: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    if x.is_floating_point():
        noise = torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.dtype)
    else:
        high = max(int(x.max()) + 1, 2)
        noise = torch.randint(0, high, x.shape, generator=g).to(x.dtype)
    steps = torch.arange(x.shape[time_axis]).view(
        [-1 if d == time_axis % x.dim() else 1 for d in range(x.dim())]
    )
    limits = torch.tensor(lens).view([-1 if d == batch_axis % x.dim() else 1 for d in range(x.dim())])
    return torch.where((steps >= limits).to(x.device), noise.to(x.device), x)
