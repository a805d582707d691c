"""A Griffe extension that lets torch.nn.RNN-style docstrings render well with the Google docstring parser.

The package's docstrings follow ``torch.nn.RNN``: ``Args:``, then ``Inputs: x, h_0`` and ``Outputs: ...``
blocks of bullets, then a ``where:`` block of ``N = batch size`` lines, with Sphinx roles such as
``:meth:`step```. Griffe's Google parser turns a ``Title:`` line followed by an indented block into an
admonition, but only when the title is plain words; and Markdown knows no Sphinx roles. So, before parsing:

- ``Inputs: x, h_0`` / ``Outputs of ``step``: y`` headers become ``Inputs:`` / ``Outputs of step:`` (the names
  after the colon repeat the bullets below them; a title keeps its words only: ``Inputs of each
  experiment's call:`` becomes ``Inputs of each experiment call:``);
- any ``...where:`` header becomes ``where:``, and each of its lines becomes a list item (otherwise Markdown
  joins them into one line);
- ``:role:`target``` becomes ```target``` (code);
- any other ``Some title (with punctuation):`` line over an indented block, which the parser would leave as
  a paragraph followed by a code block, keeps its line and loses the block's indentation;
- in an ``Args:`` block, an entry that documents several parameters at once (``atol, rtol: tolerance.``)
  becomes one entry per parameter with the same text (the Google parser knows one name per entry).

Only the docs build uses this (see ``mkdocs.yml``); the docstrings themselves stay torch-style.
"""

import re

from griffe import Extension, Object

_SECTION = re.compile(r"^(?P<kind>Inputs|Outputs)(?:\s+of\s+(?P<what>[^:]+?))?\s*:(?P<names>.*)$")
_WHERE = re.compile(r"^(?:[\w ]+,?\s+)?where:\s*$", re.IGNORECASE)
# What Griffe's Google parser accepts as an admonition title (see griffe's _RE_ADMONITION).
_ADMONITION = re.compile(r"^[\w][\s\w-]*:(\s+[^\s].*)?\s*$")
_OTHER_HEADER = re.compile(r"^\S.*:\s*$")
_ARGS = re.compile(r"^(Args|Arguments|Parameters|Params):\s*$")
_GROUPED = re.compile(r"^(?P<names>\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)+)(?P<type>\s*\([^)]*\))?:(?P<text>.*)$")
_ROLE = re.compile(r":(?:py:)?(?:meth|func|class|attr|mod|data|obj|exc|const|math):`~?([^`]+)`")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_end(lines: list[str], start: int) -> int:
    """Index after the indented block that starts at ``start`` (blank lines inside it included)."""
    end = start
    i = start
    while i < len(lines):
        if lines[i].strip():
            if _indent(lines[i]) == 0:
                break
            end = i + 1
        i += 1
    return end


def _split_grouped_args(block: list[str]) -> list[str]:
    """One entry per parameter for ``a, b: text`` entries of an Args block (continuation lines repeated)."""
    indents = [_indent(line) for line in block if line.strip()]
    if not indents:
        return block
    base = min(indents)
    out: list[str] = []
    i = 0
    while i < len(block):
        line = block[i]
        grouped = _GROUPED.match(line[base:]) if line.strip() and _indent(line) == base else None
        end = i + 1
        while end < len(block) and (not block[end].strip() or _indent(block[end]) > base):
            end += 1
        if grouped is None:
            out += block[i:end]
        else:
            rest = block[i + 1 : end]
            kind = grouped.group("type") or ""
            for name in grouped.group("names").split(","):
                out.append(f"{' ' * base}{name.strip()}{kind}:{grouped.group('text')}")
                out += rest
        i = end
    return out


def _title_words(text: str) -> str:
    """What an admonition title may hold (words, spaces, dashes): ``step`` -> step, ``each experiment's call``
    -> each experiment call, ``model.step`` -> model step."""
    text = re.sub(r"'s\b", "", text.replace("`", ""))
    return " ".join(re.sub(r"[^\w\s-]", " ", text).split())


def torch_to_google(docstring: str) -> str:
    """Rewrite the torch-style parts of a (dedented) docstring into what the Google parser renders well."""
    lines = _ROLE.sub(r"`\1`", docstring).split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        has_block = i + 1 < len(lines) and lines[i + 1].strip() != "" and _indent(lines[i + 1]) > 0
        section = _SECTION.match(line)
        if section and has_block:
            what = _title_words(section.group("what") or "")
            out.append(f"{section.group('kind')} of {what}:" if what else f"{section.group('kind')}:")
            i += 1
            continue
        if _ARGS.match(line) and has_block:
            end = _block_end(lines, i + 1)
            out.append(line)
            out += _split_grouped_args(lines[i + 1 : end])
            i = end
            continue
        if _WHERE.match(line) and has_block:
            out.append("where:")
            end = _block_end(lines, i + 1)
            base = _indent(lines[i + 1])
            for item in lines[i + 1 : end]:
                bare = item.strip()
                is_item_start = _indent(item) == base and bare and not bare.startswith(("- ", "* ", "|"))
                out.append(f"{' ' * base}- {bare}" if is_item_start else item)
            i = end
            continue
        if _OTHER_HEADER.match(line) and not _ADMONITION.match(line) and has_block:
            out += [line, ""]  # Markdown starts a list only after a blank line
            end = _block_end(lines, i + 1)
            base = min(_indent(item) for item in lines[i + 1 : end] if item.strip())
            out += [item[base:] for item in lines[i + 1 : end]]
            i = end
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


COURSE_NOTES = "What the course code got wrong"


def split_course_notes(docstring: str) -> tuple[str, str, str]:
    """Split a lesson model's (dedented) docstring around its ``What the course code got wrong:`` block.

    Returns ``(rest, remark, notes)``: the docstring without the block; the header's parenthesised remark,
    if any (the header may run over several lines until its colon); and the block itself, dedented, as
    Markdown (its bullets), with Sphinx roles made code. Without such a block: ``(docstring, "", "")``.
    """
    lines = docstring.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith(COURSE_NOTES)), None)
    if start is None:
        return docstring, "", ""
    end_header = start
    while end_header < len(lines) and not lines[end_header].rstrip().endswith(":"):
        end_header += 1
    if end_header == len(lines):
        return docstring, "", ""
    header = " ".join(line.strip() for line in lines[start : end_header + 1])
    remark = header[len(COURSE_NOTES) :].rstrip(":").strip().removeprefix("(").removesuffix(")")
    end = _block_end(lines, end_header + 1)
    block = [line for line in lines[end_header + 1 : end]]
    base = min((_indent(line) for line in block if line.strip()), default=0)
    notes = _ROLE.sub(r"`\1`", "\n".join(line[base:] for line in block).strip("\n"))
    rest = "\n".join(lines[:start] + lines[end:]).rstrip()
    return rest, remark, notes


class TorchDocstrings(Extension):
    """Rewrites every loaded object's docstring with :func:`torch_to_google` before it is parsed.

    The ``What the course code got wrong:`` block of a lesson model is left out: the lesson page shows it in
    a section of its own (``docs_support.course_notes``), so the API entry below does not repeat it.
    """

    def on_object(self, *, obj: Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            rest, _, _ = split_course_notes(obj.docstring.value)
            obj.docstring.value = torch_to_google(rest)
