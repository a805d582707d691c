"""The shape vocabulary is written once (rnnshapes.core._vocab) and shown where users look for it."""

import pydoc

import rnnshapes
from rnnshapes import DIMENSIONS


def test_help_on_the_package_shows_the_vocabulary_as_written_in_DIMENSIONS():
    text = pydoc.render_doc(rnnshapes, renderer=pydoc.plaintext)
    rows = [line.split() for line in text.splitlines()]
    for dim in DIMENSIONS:
        row = next((r for r in rows if r and r[0] == dim.name), None)
        assert row is not None, f"help(rnnshapes) has no row for {dim.name!r}"
        assert " ".join(row[1:]) == " ".join(f"{dim.torch_symbol} {dim.meaning}".split()), (dim.name, row)


def test_the_vocabulary_names_every_axis_the_annotations_use():
    from rnnshapes.core._checks import Hidden, LSTMState  # noqa: F401  (their shape strings use the vocabulary)

    names = {d.name for d in DIMENSIONS}
    assert {"batch", "time", "input", "hidden", "cell", "layers", "dirs", "layers*dirs"} <= names
