"""What ``trace`` returns, and its three forms: plain text (``str``/``repr``), Markdown, and a dict / JSON."""

import json
from dataclasses import asdict, dataclass
from typing import Any

MARKDOWN_HEADER = ("call", "tensor", "shape", "dtype", "axes")
"""The columns of ``Trace.markdown()`` (a ``note`` column follows when any row has a note)."""


@dataclass(frozen=True)
class TracedTensor:
    """One value a call received or returned.

    Attributes:
        name: ``input``, ``h_0``, ``output``, ``h_n``, ``c_n``, ``attn_weights``, an argument's name, ...
        kind: ``"tensor"``, ``"packed"`` (shape, dtype and axes are its ``data``'s), ``"none"`` or ``"value"``.
        shape: the sizes (of ``data`` when packed).
        dtype: ``"float32"``, ``"int64"``, ...
        device: ``"cpu"``, ``"cuda:0"``, ...
        axes: one name per axis from the vocabulary (``"batch"``, ``"layers*dirs"``, ...), ``""`` where unknown.
        batch_sizes: a packed sequence's ``batch_sizes``.
        value: the ``repr`` of a value that is not a tensor (kind ``"value"``).
    """

    name: str
    kind: str
    shape: tuple[int, ...] = ()
    dtype: str = ""
    device: str = ""
    axes: tuple[str, ...] = ()
    batch_sizes: tuple[int, ...] = ()
    value: str = ""

    def describe_shape(self) -> str:
        """``(4, 9, 128)``; ``packed (19, 128)``; ``None``; or the value's repr."""
        if self.kind == "none":
            return "None"
        if self.kind == "value":
            return self.value
        text = "(" + ", ".join(map(str, self.shape)) + ("," if len(self.shape) == 1 else "") + ")"
        return f"packed {text}" if self.kind == "packed" else text

    def describe_axes(self) -> str:
        """``batch=4 time=9 input=128`` (an unnamed axis shows its size alone); packed adds ``batch_sizes``."""
        if self.kind not in ("tensor", "packed"):
            return ""
        text = " ".join(f"{a}={s}" if a else str(s) for a, s in zip(self.axes, self.shape, strict=True))
        if self.kind == "packed":
            text += f", batch_sizes={list(self.batch_sizes)}"
        return text


@dataclass(frozen=True)
class TracedCall:
    """One row of a trace: a layer's call (or several identical calls, folded).

    Attributes:
        path: the layer's path in the model (``"encoder.rnn"``).
        layer: its configuration (``"GRU(input=100, hidden=256, layers=1, dirs=2, batch_first)"``).
        inputs / outputs: what it received and returned.
        calls: how many calls with these very shapes this row stands for.
        notes: sizes of the call that disagree with each other or with the model's batch.
        raised: ``"RuntimeError: ..."`` when the call raised (its outputs are then empty).
    """

    path: str
    layer: str
    inputs: tuple[TracedTensor, ...]
    outputs: tuple[TracedTensor, ...]
    calls: int = 1
    notes: tuple[str, ...] = ()
    raised: str = ""


@dataclass(frozen=True)
class Trace:
    """What ``rnnshapes.trace`` returns: the model's arguments, every layer call, and what the model returned.

    ``str(trace)`` (and ``repr``) is a plain-text table, ``trace.markdown()`` a Markdown table, and
    ``trace.to_dict()`` / ``trace.to_json()`` the same content for tools.

    Attributes:
        model: what was called (``"NamesClassifier"``, ``"HelloRNN.step"``).
        mode: how it ran (``"eval, no_grad, cpu"``).
        arguments: the model's arguments. calls: the rows, in call order. returned: the return value.
        notes: the model's own annotations against its arguments and return value, where they disagree.
        error: what the call raised (the trace then stops at the failing call), ``""`` otherwise.
    """

    model: str
    mode: str
    arguments: tuple[TracedTensor, ...]
    calls: tuple[TracedCall, ...]
    returned: tuple[TracedTensor, ...]
    notes: tuple[str, ...] = ()
    error: str = ""

    def __str__(self) -> str:
        return _text(self)

    def __repr__(self) -> str:
        return _text(self)

    def _repr_markdown_(self) -> str:  # notebooks
        return self.markdown()

    def markdown(self) -> str:
        """A Markdown table: one line per tensor, the call's path, configuration and count on its first line."""
        return _markdown(self)

    def to_dict(self) -> dict[str, Any]:
        """The trace as plain dicts, lists, strings and ints (shapes as lists)."""
        return _plain(asdict(self))

    def to_json(self, **kwargs: Any) -> str:
        """``json.dumps(self.to_dict(), **kwargs)``."""
        return json.dumps(self.to_dict(), **kwargs)

    def rows(self, path: str) -> list[TracedCall]:
        """The rows of the layer at ``path`` (one per distinct call signature)."""
        return [c for c in self.calls if c.path == path]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _groups(t: Trace) -> list[tuple[str, list[tuple[str, TracedTensor]], list[str]]]:
    """(heading, [(role, tensor)], notes) for the model's arguments, each call, and the return value."""
    groups: list[tuple[str, list[tuple[str, TracedTensor]], list[str]]] = [
        (f"{t.model}  ({t.mode})", [("", a) for a in t.arguments], [])
    ]
    for c in t.calls:
        heading = f"{c.path}  {c.layer}" + (f"  ×{c.calls}" if c.calls > 1 else "")
        rows = [("in", x) for x in c.inputs] + [("out", x) for x in c.outputs]
        notes = list(c.notes) + ([f"raised {c.raised}"] if c.raised else [])
        groups.append((heading, rows, notes))
    tail = [f"the call raised {t.error}"] if t.error else []
    groups.append((t.model, [("", r) for r in t.returned], list(t.notes) + tail))
    return groups


def _text(t: Trace) -> str:
    groups = _groups(t)
    cells = [
        (f"{role + ' ' if role else ''}{x.name}", x.describe_shape(), x.dtype, x.describe_axes())
        for _, rows, _ in groups
        for role, x in rows
    ]
    widths = [max((len(c[i]) for c in cells), default=0) for i in range(3)]
    lines = []
    for heading, rows, notes in groups:
        lines.append(heading)
        for role, x in rows:
            row = (f"{role + ' ' if role else ''}{x.name}", x.describe_shape(), x.dtype, x.describe_axes())
            lines.append(
                (
                    "    " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[3]
                ).rstrip()
            )
        lines += [f"    ! {n}" for n in notes]
    return "\n".join(lines)


def _cell(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("|", "\\|").replace("[", "\\[")  # [1][0] is no link
    return escaped.replace("\n", " ")


def _markdown(t: Trace) -> str:
    groups = _groups(t)
    with_notes = any(notes for _, _, notes in groups)
    header = MARKDOWN_HEADER + (("note",) if with_notes else ())
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for i, (_, rows, notes) in enumerate(groups):
        if i in (0, len(groups) - 1):
            title = f"`{t.model}`"
        else:
            c = t.calls[i - 1]
            title = f"`{c.path}` {c.layer}" + (f" ×{c.calls}" if c.calls > 1 else "")
        if not rows:
            rows = [("", _EMPTY)]
        for j, (role, x) in enumerate(rows):
            role = role or ("argument" if i == 0 else "")
            cells = [title if j == 0 else "", f"{x.name} ({role})" if role else x.name]
            cells += [x.describe_shape(), x.dtype, x.describe_axes()]
            if with_notes:
                cells.append("; ".join(notes) if j == 0 else "")
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


_EMPTY = TracedTensor("", "value")
