"""The shape contract probe: pairwise-distinct sizes for every named dimension, so no swap passes by chance."""

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ._calls import CallFn, as_args, dataclass_items, default_call, describe, fail, mode

Sizes = Mapping[str, int]

_MAX_TRIES = 1000
"""How many sizes :func:`distinct_sizes` tries for one dimension before it gives up."""


def _is_constant(name: str) -> bool:
    """An integer literal (``"2"``): a fixed size, not a dimension name to pick a size for."""
    return name.strip().isdigit()


def _factors(name: str) -> list[str]:
    return [part.strip() for part in name.split("*")]


def _value(name: str, sizes: Mapping[str, int]) -> int | None:
    """The size of a name, an integer literal or a product of both (``"2*hidden"``); None when unknown."""
    if name in sizes:
        return sizes[name]
    parts = _factors(name)
    if all(p in sizes or _is_constant(p) for p in parts):
        return math.prod(sizes[p] if p in sizes else int(p) for p in parts)
    return None


def _canonical(name: str, sizes: Mapping[str, int]) -> tuple[tuple[str, ...], int]:
    """A product as (its named factors of size other than 1, sorted; the product of its literal factors)."""
    parts = _factors(name)
    constant = math.prod(int(p) for p in parts if _is_constant(p))
    named = sorted(p for p in parts if not _is_constant(p) and sizes.get(p) != 1)
    return tuple(named), constant


def _same_by_definition(a: str, b: str, sizes: Mapping[str, int]) -> bool:
    """``layers*dirs`` equals ``layers`` when ``dirs`` is 1, and ``hidden*2`` is ``2*hidden``: that is the same
    dimension, not a coincidence."""
    if len(_factors(a)) == 1 and len(_factors(b)) == 1:
        return False
    return _canonical(a, sizes) == _canonical(b, sizes)


def coincidences(sizes: Mapping[str, int], axes: Iterable[str] | None = None) -> list[tuple[str, str, int]]:
    """Pairs of names with the same size, where a swap of those axes could pass unseen.

    Not counted: a product and its own factor when the other factors are 1 (``layers*dirs`` = ``layers`` for
    ``dirs`` = 1), and ``dirs`` = 1 (a unidirectional model has no second direction to swap). With ``axes``,
    only names that are axes count: ``layers`` = ``dirs`` = 2 is no coincidence when only ``layers*dirs`` is
    ever an axis (the two never meet on one axis to be swapped)."""
    values = {name: _value(name, sizes) for name in sizes}
    allowed = None if axes is None else set(axes)
    names = [
        n
        for n, v in values.items()
        if v is not None and not (n == "dirs" and v == 1) and (allowed is None or n in allowed)
    ]
    found = []
    for k, a in enumerate(names):
        for b in names[k + 1 :]:
            if values[a] == values[b] and not _same_by_definition(a, b, sizes):
                found.append((a, b, int(values[a] or 0)))
    return found


def _derive_factors(values: dict[str, int], products: list[str]) -> None:
    """Fixed products decide their factors: ``layers*dirs`` = 4 with ``dirs`` = 2 makes ``layers`` = 2. Raises
    when a product and its factors disagree or a factor cannot be derived."""
    changed = True
    while changed:
        changed = False
        for name in products:
            if name not in values:
                continue
            parts = [p for p in _factors(name) if not _is_constant(p)]
            constant = math.prod(int(p) for p in _factors(name) if _is_constant(p))
            unknown = [p for p in parts if p not in values]
            known = constant * math.prod(values[p] for p in parts if p in values)
            if not unknown:
                if known != values[name]:
                    shown = " * ".join(str(values[p]) for p in parts)
                    raise ValueError(
                        f"the fixed sizes disagree: {name} = {values[name]}, but {' * '.join(parts)} = {shown} = "
                        f"{known}"
                    )
            elif len(unknown) == 1 and (unknown[0] != "dirs" or values[name] % known == 0):
                if values[name] % known:
                    raise ValueError(
                        f"{name} = {values[name]} is not a multiple of the other factors' {known}: no "
                        f"{unknown[0]} fits"
                    )
                values[unknown[0]] = values[name] // known
                changed = True


def distinct_sizes(
    names: Iterable[str], start: int = 2, fixed: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Pick a size for every named dimension so that no two are equal (products included).

    Sizes are the smallest integers from ``start`` that keep all of them pairwise distinct, in the order of
    ``names``; a product name such as ``"layers*dirs"`` gets the product of its factors (which are added to
    the result when not named), and is kept distinct from every other size too: a batch of 2 equal to
    layers*dirs = 2 once hid a real bug. ``dirs`` is 2 unless ``fixed`` says otherwise (it can only be 1 or 2).
    Integer literals are constants: the ``2`` of ``"2*hidden"`` multiplies, and a literal axis such as ``"2"``
    gets no entry of its own, but the picked sizes avoid its value (a batch of 2 next to a literal axis of 2
    would hide their swap).

    Args:
        names: dimension names, e.g. ``["batch", "time", "input", "hidden", "layers", "layers*dirs"]``.
        start: the smallest size to use (2: a size of 1 broadcasts and hides bugs).
        fixed: sizes decided in advance (e.g. ``{"dirs": 1}`` for a unidirectional model).

    Returns:
        ``{name: size}`` for every name and factor (integer literals left out).

    Example:
        >>> distinct_sizes(["batch", "time", "hidden", "layers", "layers*dirs"])
        {'batch': 3, 'time': 4, 'hidden': 5, 'layers': 6, 'layers*dirs': 12, 'dirs': 2}
        >>> distinct_sizes(["batch", "time", "2*hidden"])
        {'batch': 2, 'time': 3, '2*hidden': 8, 'hidden': 4}
    """
    given = list(dict.fromkeys(names))
    literals = {int(n) for n in given if _is_constant(n)}
    wanted = [n for n in given if not _is_constant(n)]
    values: dict[str, int] = dict(fixed or {})
    atoms: list[str] = []
    for name in wanted:
        for part in _factors(name):
            if part not in atoms and not _is_constant(part):
                atoms.append(part)
    products = [n for n in [*wanted, *values] if len(_factors(n)) > 1]
    factors_only = {p for n in products for p in _factors(n)} - set(wanted)
    axes = [*wanted, *(n for n in values if n not in factors_only and n not in wanted)]
    _derive_factors(values, products)
    if "dirs" in atoms and "dirs" not in values:
        values["dirs"] = 2
        _derive_factors(values, products)
    if values.get("dirs", 1) not in (1, 2):
        raise ValueError(f"dirs is the number of directions, 1 or 2, not {values['dirs']}")
    undecided = [
        n
        for n in products
        if n in values and any(p not in values for p in _factors(n) if not _is_constant(p))
    ]
    if undecided:
        raise ValueError(f"fix all but one factor of {undecided[0]} too: its factors cannot be told apart")
    clash = coincidences({n: v for n, v in values.items()}, axes)
    if clash:
        raise ValueError(f"the fixed sizes already coincide: {clash}")
    for atom in atoms:
        if atom in values:
            continue
        for v in range(start, start + _MAX_TRIES):
            trial = {**values, atom: v}
            known = {n: x for n in [*trial, *wanted] if (x := _value(n, trial)) is not None}
            touched = {x for n, x in known.items() if atom in _factors(n)}
            clash = coincidences(known, axes)
            if v not in values.values() and not touched & literals and not clash:
                break
        else:  # e.g. a*b and 2*b with a fixed to 2: equal whatever b is
            pairs = ", ".join(f"{a} = {b}" for a, b, _ in clash) or "a literal axis"
            raise ValueError(
                f"no size of {atom!r} keeps the sizes pairwise distinct: {pairs} for every size tried "
                f"({start} to {start + _MAX_TRIES - 1})"
            )
        values[atom] = v
    result = {name: int(_value(name, values) or 0) for name in wanted}
    for atom in atoms:
        result.setdefault(atom, values[atom])
    return result


def _resolve(spec: Any, sizes: Mapping[str, int]) -> tuple[tuple[int, ...], list[str]]:
    """A shape spec -> (sizes, token per axis). A spec is "batch time hidden" or a tuple of ints/names."""
    tokens = spec.split() if isinstance(spec, str) else list(spec)
    shape: list[int] = []
    names: list[str] = []
    for token in tokens:
        if isinstance(token, int):
            shape.append(token)
            names.append(str(token))
            continue
        token = str(token)
        if _is_constant(token):
            shape.append(int(token))
        else:
            value = _value(token, sizes)
            if value is None:
                raise ValueError(f"the shape {spec!r} names {token!r}, which is not in sizes {dict(sizes)}")
            shape.append(value)
        names.append(token)
    return tuple(shape), names


def _spec_names(spec: Any) -> list[str]:
    """Every dimension name, product and integer literal that a (nested) shape spec mentions, in order
    (literals as strings: :func:`distinct_sizes` keeps the sizes it picks away from them)."""
    found: list[str] = []
    if isinstance(spec, str):
        found += spec.split()
    elif isinstance(spec, int):
        found.append(str(spec))
    elif isinstance(spec, (tuple, list)):
        for item in spec:
            found += [n for n in _spec_names(item) if n not in found]
    elif isinstance(spec, Mapping):
        for item in spec.values():
            found += [n for n in _spec_names(item) if n not in found]
    return list(dict.fromkeys(found))


def _explain(
    got: tuple[int, ...], want: tuple[int, ...], names: list[str], sizes: Mapping[str, int]
) -> list[str]:
    by_size: dict[int, list[str]] = {}
    for name in sizes:
        value = _value(name, sizes)
        if value is not None:
            by_size.setdefault(value, []).append(name)
    lines = []
    if len(got) != len(want):
        lines.append(f"  {len(got)} axes instead of {len(want)}")
    wrong = []
    for axis, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            seen = "/".join(by_size.get(g, [])) or "no named size"
            lines.append(f"  axis {axis}: got {g} (= {seen}), expected {names[axis]} = {w}")
            wrong.append((axis, g, w))
    swaps = []
    for k, (a, ga, wa) in enumerate(wrong):
        for b, gb, wb in wrong[k + 1 :]:
            if ga == wb and gb == wa:
                swaps.append(f"{names[a]} and {names[b]} (axes {a} and {b})")
    if swaps:
        lines.append(
            "  swapped: "
            + "; ".join(swaps)
            + " - a transpose/permute missing, or a view/reshape in the wrong order"
        )
    return lines


def _match(
    result: Any, spec: Any, sizes: Mapping[str, int], path: str, problems: list[str], checked: list[str]
) -> None:
    if spec is None:
        return
    if isinstance(result, (Tensor, PackedSequence)):
        tensor = result.data if isinstance(result, PackedSequence) else result
        where = f"{path}.data" if isinstance(result, PackedSequence) else path
        want, names = _resolve(spec, sizes)
        got = tuple(int(s) for s in tensor.shape)
        checked.append(f"{where} {' '.join(names)} = {want}")
        if got != want:
            problems.append(f"{where} has shape {got}, but the contract says '{' '.join(names)}' = {want}:")
            problems.extend(_explain(got, want, names, sizes))
        return
    if fields := dataclass_items(result):  # an output record: named by its fields, or in their order
        _match_record(result, fields, spec, sizes, path, problems, checked)
        return
    if isinstance(result, (tuple, list)):
        if isinstance(spec, str) or not isinstance(spec, (tuple, list)) or len(spec) != len(result):
            problems.append(f"{path} is {describe(result)}, but the contract expects {spec!r} there")
            return
        for k, (item, sub) in enumerate(zip(result, spec, strict=True)):
            _match(item, sub, sizes, f"{path}[{k}]", problems, checked)
        return
    if isinstance(result, Mapping):
        if not isinstance(spec, Mapping):
            problems.append(f"{path} is {describe(result)}, but the contract expects {spec!r} there")
            return
        _match_named(result, spec, sizes, path, problems, checked, record=None)
        return
    problems.append(f"{path} is {describe(result)}, which is no tensor; the contract expects {spec!r}")


def _match_named(
    values: Mapping[Any, Any],
    spec: Mapping[Any, Any],
    sizes: Mapping[str, int],
    path: str,
    problems: list[str],
    checked: list[str],
    record: str | None,
) -> None:
    """The entries a dict contract names, in a dict result (``result['key']``) or a record (``result.field``)."""
    for key, sub in spec.items():  # keys the contract does not name are not checked
        if key not in values:
            what = (
                f"{path} has no key {key!r} (its keys:"
                if record is None
                else f"{path} ({record}) has no field "
            )
            what += "" if record is None else f"{key!r} (its fields:"
            problems.append(f"{what} {list(values)}), which the contract names")
            continue
        where = f"{path}[{key!r}]" if record is None else f"{path}.{key}"
        _match(values[key], sub, sizes, where, problems, checked)


def _match_record(
    record: Any,
    fields: list[tuple[str, Any]],
    spec: Any,
    sizes: Mapping[str, int],
    path: str,
    problems: list[str],
    checked: list[str],
) -> None:
    """A dataclass output against a dict contract (by field name) or a tuple one (in field order)."""
    kind, names = type(record).__name__, [name for name, _ in fields]
    if isinstance(spec, Mapping):
        _match_named(dict(fields), spec, sizes, path, problems, checked, record=kind)
    elif isinstance(spec, (tuple, list)) and len(spec) == len(fields):
        for (name, value), sub in zip(fields, spec, strict=True):
            _match(value, sub, sizes, f"{path}.{name}", problems, checked)
    else:
        problems.append(
            f"{path} is {kind}, a record with the fields {names}, but the contract expects {spec!r} there: name "
            f"the fields in a dict ({{{names[0]!r}: ...}}), or give one entry per field, in order, in a tuple"
        )


def _recurrent(net: Any) -> tuple[int, int, str] | None:
    """``(layers, dirs, names)`` of the model's recurrent layers when they all agree (None when there are none or
    they differ: then no one ``layers`` / ``dirs`` describes the model)."""
    if not isinstance(net, nn.Module):
        return None
    rnns = [(name or "model", m) for name, m in net.named_modules() if isinstance(m, nn.RNNBase)]
    configs = {(m.num_layers, 2 if m.bidirectional else 1) for _, m in rnns}
    if len(configs) != 1:
        return None
    layers, dirs = configs.pop()
    shown = ", ".join(f"{'model.' + n if n != 'model' else n} ({type(m).__name__})" for n, m in rnns[:3])
    return layers, dirs, shown


def _from_model(net: Any, names: list[str]) -> dict[str, int]:
    """``layers`` / ``dirs`` as the built model's recurrent layers have them, for those the names use."""
    found = _recurrent(net)
    atoms = {p for n in names for p in _factors(n)}
    if found is None:
        return {}
    layers, dirs, _ = found
    return {k: v for k, v in (("layers", layers), ("dirs", dirs)) if k in atoms}


def _disagreement(net: Any, table: Mapping[str, int]) -> str | None:
    """A note when given sizes say other ``layers`` / ``dirs`` than the model's recurrent layers have."""
    found = _recurrent(net)
    if found is None:
        return None
    layers, dirs, shown = found
    wrong = [f"{k} = {table[k]} (the model has {v})" for k, v in (("layers", layers), ("dirs", dirs)) if k in table
             and table[k] != v]  # fmt: skip
    if not wrong:
        return None
    return (
        f"note: the sizes say {', '.join(wrong)}, from {shown}: a correct model fails a contract with these "
        "sizes; pass the model's values in sizes, or give sizes as names and the check reads them from the model"
    )


def _packed_total(inputs: Any, table: Mapping[str, int]) -> tuple[int, str] | None:
    """``total`` as the inputs make it true: the rows of a packed input, or the sum of a lengths input."""
    args = list(as_args(inputs))
    for arg in args:
        if isinstance(arg, PackedSequence):
            return int(arg.data.shape[0]), "the rows of the packed input"
    for arg in args:
        if (
            isinstance(arg, Tensor)
            and arg.dim() == 1
            and not arg.is_floating_point()
            and arg.dtype != torch.bool
        ):
            if "batch" not in table or arg.numel() == table["batch"]:
                return int(arg.sum()), "the sum of the lengths input"
    return None


def check_shape_contract(
    model: nn.Module | Callable[[dict[str, int]], Any],
    make_inputs: Callable[[dict[str, int]], Any],
    expected: Any,
    *,
    sizes: Mapping[str, int] | Iterable[str],
    call: CallFn | None = None,
) -> dict[str, int]:
    """Run the model on inputs of pairwise-distinct sizes and check the shape of every tensor it returns.

    With every dimension a different size, an output that has batch where layers*dirs belongs (or time where
    batch belongs) cannot pass by coincidence, and the message names the swapped dimensions.

    Two sizes come from elsewhere than the picking. ``total`` (the rows of a PackedSequence, the sum of the
    lengths) is read from the inputs ``make_inputs`` returns: from a packed input, or from a 1-D integer
    (lengths) input; given in ``sizes`` it must agree with them. ``layers`` and ``dirs``, when the sizes are
    picked from names, are read from the built model's recurrent layers (``num_layers``, ``bidirectional``),
    so a unidirectional GRU gets ``dirs`` = 1 without ``fixed={"dirs": 1}``; given in ``sizes``, a value the
    model does not have is named in the failure.

    Args:
        model: an ``nn.Module``, or a factory ``model(sizes) -> module`` (to build it with the probe's sizes).
        make_inputs: ``make_inputs(sizes) -> inputs`` (one input or a tuple of positional inputs).
        expected: the shapes of the result, mirroring its structure: a shape is a string of dimension names
            (``"batch time hidden"``; products like ``"layers*dirs"``, integer literals and products with
            them like ``"2*hidden"`` allowed) or a tuple of ints/names; a tuple of shapes for a tuple result
            (``("batch time hidden", ("layers*dirs batch hidden", "layers*dirs batch cell"))`` for an LSTM's
            ``(out, (h, c))``), a dict of shapes for a dict result (``{"logits": "batch time classes"}``; keys
            it does not name are not checked); None skips a part. A PackedSequence's ``data`` is checked (``"total
            hidden"``). May also be ``expected(sizes)``.
        sizes: ``{name: size}``, or dimension names to pass to :func:`distinct_sizes` (together with every
            name, product and literal that ``expected`` mentions, when it is not a function), which picks them
            smallest first in that order: name a size first where the model needs it below another (an
            LSTM's proj_size, the vocabulary's ``hidden``, below its hidden_size, ``cell``). Axes whose sizes
            coincide, products used in ``expected`` included, are refused (ValueError); factors that are never
            an axis themselves (``layers`` and ``dirs`` of ``layers*dirs``) may coincide.
        call: ``call(model, *inputs) -> result``; default ``model(*inputs)``.

    Returns:
        The sizes used (``total`` included when the contract names it).

    Raises:
        ValueError: when two axes' sizes coincide, or ``total`` cannot be read from the inputs or disagrees
            with them (a fault of the contract, not of the model).
        CheckFailed: listing each tensor with a wrong shape, axis by axis, with swapped dimensions named.
    """
    __tracebackhide__ = True
    spec = None if callable(expected) else expected
    named = _spec_names(spec)
    given = isinstance(sizes, Mapping)
    factory = not isinstance(model, nn.Module) and callable(model)
    names = [] if given else [n for n in dict.fromkeys([*sizes, *named]) if n != "total"]  # type: ignore[misc]
    if isinstance(sizes, Mapping):
        table = dict(sizes)
    else:  # the names asked for, plus every name and product the expected shapes use
        table = distinct_sizes(names, fixed=_from_model(model, names))
    product_names = [n for n in [*named, *table] if len(_factors(n)) > 1]
    factors_only = {p for n in product_names for p in _factors(n)} - set(named)
    axes = [n for n in dict.fromkeys([*named, *table]) if n not in factors_only and not _is_constant(n)]
    _refuse_coincidences(table, named, axes)
    net = _build(model, table, given) if factory else model
    if factory and not given:
        fixed = _from_model(net, names)
        if any(table.get(k) != v for k, v in fixed.items()):  # the factory built other layers / dirs
            table = distinct_sizes(names, fixed=fixed)
            net = _build(model, table, given)
    inputs = make_inputs(table)
    if "total" in named or "total" in table:
        _set_total(table, inputs, given_total=table.get("total"))
        _refuse_coincidences(table, named, axes)
    if spec is None:
        spec = expected(table)
    with mode(net, False):
        try:
            result = (call or default_call)(net, *as_args(inputs))
        except Exception as e:
            e.add_note(f"rnnshapes.testing.check_shape_contract: the model raised with sizes {table}")
            raise
    problems: list[str] = []
    checked: list[str] = []
    _match(result, spec, table, "result", problems, checked)
    if problems:
        note = _disagreement(net, table) if given else None
        raise fail(
            "shape contract failed: the model returned tensors of the wrong shape.",
            f"sizes: {table}\n" + "\n".join(problems) + (f"\n{note}" if note else ""),
            "every dimension has a different size here, so each axis above is identified by its size",
        )
    return table


def _build(factory: Callable[[dict[str, int]], Any], table: dict[str, int], given: bool) -> Any:
    """``factory(table)``; where it raises, a note gives the sizes and, for picked sizes, how to order them."""
    try:
        return factory(table)
    except Exception as e:
        e.add_note(f"rnnshapes.testing.check_shape_contract: the model factory raised with sizes {table}")
        if not given:
            e.add_note(
                "the sizes are picked smallest first, in the order the names come (sizes, then expected): where "
                "the model needs one size below another (nn.LSTM's proj_size < hidden_size), name the smaller "
                "first, or pass sizes as a dict"
            )
        raise


def _refuse_coincidences(table: Mapping[str, int], named: list[str], axes: list[str]) -> None:
    products = {n: _value(n, table) for n in named if n not in table and not _is_constant(n)}
    clash = coincidences({**table, **{n: v for n, v in products.items() if v is not None}}, axes)
    if clash:
        pairs = ", ".join(f"{a} = {b} = {v}" for a, b, v in clash)
        raise ValueError(
            f"check_shape_contract needs pairwise-distinct sizes, but {pairs}: a swap of those axes would pass "
            "unseen. Use distinct_sizes([...]) to pick them"
            + ("; total is read from the inputs: choose lengths with another sum" if "total" in pairs else "")
        )


def _set_total(table: dict[str, int], inputs: Any, given_total: int | None) -> None:
    found = _packed_total(inputs, table)
    if found is None:
        if given_total is not None:
            return
        raise ValueError(
            "the contract names total (the rows of a PackedSequence, the sum of the lengths), but the sizes do not "
            "give it and the inputs hold no PackedSequence or 1-D lengths tensor to read it from: put "
            "sizes['total'] = the sum of the lengths make_inputs packs"
        )
    total, source = found
    if given_total is not None and given_total != total:
        raise ValueError(
            f"the sizes say total = {given_total}, but the inputs make it {total} ({source}): the contract, not "
            "the model, is off; leave total out of sizes and the check reads it from the inputs"
        )
    table["total"] = total
