"""The docs build's Griffe extension (docs/_ext/torch_docstrings.py): torch-style docstrings -> Google style."""

import importlib.util
import textwrap
from pathlib import Path

import pytest

griffe = pytest.importorskip(
    "griffe", reason="griffe (from mkdocstrings-python) is not installed; install the docs group"
)

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "torch_docstrings", ROOT / "docs" / "_ext" / "torch_docstrings.py"
)
assert _spec is not None and _spec.loader is not None
torch_docstrings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(torch_docstrings)
torch_to_google = torch_docstrings.torch_to_google

TORCH_STYLE = textwrap.dedent(
    """\
    Reads a sequence. See :meth:`step` and :class:`~rnnshapes.models.HelloRNN`.

    Args:
        hidden: H_out, features of the hidden state.

    Inputs of ``forward``: x, h_0
        * **x**: ``(N, L, H_in)`` if batch_first else ``(L, N, H_in)``, a long
          description that wraps.
        * **h_0**: ``(D * num_layers, N, H_out)``.

    Outputs: output, h_n
        * **output**: ``(N, L, D * H_out)``.

    Shapes, where:
        N = batch size
        L = sequence length, which here
            wraps onto a second line
        - D = 2 if bidirectional else 1

    What the course got wrong (the script
    is 12_3):
        * it reshapes the output.
    """
)


def parse(text: str) -> list:
    return griffe.Docstring(text).parse("google")


def test_inputs_and_outputs_headers_become_titled_admonitions() -> None:
    out = torch_to_google(TORCH_STYLE)
    assert "\nInputs of forward:\n" in out
    assert "\nOutputs:\n" in out
    admonitions = [s for s in parse(out) if s.kind.value == "admonition"]
    titles = [s.title for s in admonitions]
    assert titles[:2] == ["Inputs of forward", "Outputs"]
    assert "* **x**: ``(N, L, H_in)``" in admonitions[0].value.contents


def test_where_block_becomes_a_list_with_its_continuations() -> None:
    out = torch_to_google(TORCH_STYLE)
    where = next(s for s in parse(out) if s.kind.value == "admonition" and s.title == "where")
    assert where.value.contents.splitlines() == [
        "- N = batch size",
        "- L = sequence length, which here",
        "    wraps onto a second line",
        "- D = 2 if bidirectional else 1",
    ]


def test_sphinx_roles_become_code() -> None:
    out = torch_to_google(TORCH_STYLE)
    assert out.splitlines()[0] == "Reads a sequence. See `step` and `rnnshapes.models.HelloRNN`."
    assert ":meth:" not in out and ":class:" not in out


def test_other_headers_keep_their_text_and_lose_the_code_block_indent() -> None:
    out = torch_to_google(TORCH_STYLE)
    assert out.endswith("What the course got wrong (the script\nis 12_3):\n\n* it reshapes the output.\n")


def test_google_sections_and_plain_text_are_left_alone() -> None:
    google = (
        "Summary.\n\nArgs:\n    x: the input.\n\nReturns:\n    The output.\n\nInputs: are not a header here."
    )
    assert torch_to_google(google) == google
    kinds = [s.kind.value for s in parse(torch_to_google(TORCH_STYLE))]
    assert kinds.count("parameters") == 1


def test_grouped_args_become_one_entry_each() -> None:
    doc = textwrap.dedent(
        """\
        Compare.

        Args:
            model: the model.
            atol, rtol: tolerance, absolute and
                relative.
            call, output (callable): as in ``check``.
            seed: the seed.
        """
    )
    out = torch_to_google(doc)
    params = next(s for s in parse(out) if s.kind.value == "parameters").value
    assert [p.name for p in params] == ["model", "atol", "rtol", "call", "output", "seed"]
    by_name = {p.name: p for p in params}
    assert by_name["rtol"].description == "tolerance, absolute and\nrelative."
    assert by_name["output"].annotation == "callable"


def test_a_comma_inside_an_entry_text_is_not_a_group() -> None:
    doc = "Summary.\n\nArgs:\n    x: a, b: not names.\n"
    assert torch_to_google(doc) == doc


def test_a_header_of_several_words_keeps_them_as_its_title() -> None:
    doc = textwrap.dedent(
        """\
        Summary.

        Inputs of each experiment's call: input, h_0 (LSTM: input, (h_0, c_0))
            * **input**: one-hot symbols.
            * **h_0**: the initial state.
        """
    )
    out = torch_to_google(doc)
    assert "\nInputs of each experiment call:\n" in out
    admonition = next(s for s in parse(out) if s.kind.value == "admonition")
    assert admonition.title == "Inputs of each experiment call"
    assert admonition.value.contents.splitlines()[0] == "* **input**: one-hot symbols."
