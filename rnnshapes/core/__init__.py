"""The core layer: the shape vocabulary and its checking (``shapecheck``, ``guard``, ``pack``, ``ShapeError``
and its hints, the on/off switch), plus the errors and small helpers every other layer shares.

It imports torch, jaxtyping and beartype, and nothing else of rnnshapes. This ``__init__`` imports nothing,
so ``import rnnshapes`` (which needs only the errors and the vocabulary) stays free of torch; the public
names are re-exported by ``rnnshapes/__init__.py``.
"""
