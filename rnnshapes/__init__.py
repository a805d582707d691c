"""rnnshapes: recurrent networks in PyTorch that are hard to get wrong.

``import rnnshapes`` stays light: torch, jaxtyping and beartype are imported only when a checked name is first
used (the pytest plugin relies on this). The public face is listed in ``__all__``; the sub-packages
``rnnshapes.models``, ``rnnshapes.data``, ``rnnshapes.train``, ``rnnshapes.lessons`` and
``rnnshapes.testing`` are imported directly.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import CheckpointError as CheckpointError
from ._errors import DataError as DataError
from ._errors import ShapeError as ShapeError
from ._errors import TrainingError as TrainingError
from ._vocab import DIMENSIONS as DIMENSIONS
from ._vocab import SEQ as SEQ
from ._vocab import __doc__ as _vocabulary

__doc__ = f"{__doc__}\n{_vocabulary}"  # help(rnnshapes) shows the shape vocabulary, written once in _vocab

if TYPE_CHECKING:
    from ._checks import Hidden as Hidden
    from ._checks import LSTMState as LSTMState
    from ._checks import Packed as Packed
    from ._checks import checks as checks
    from ._checks import checks_enabled as checks_enabled
    from ._checks import shapecheck as shapecheck
    from ._guard import GuardHandle as GuardHandle
    from ._guard import guard as guard
    from ._pack import pack as pack

__version__ = "0.1.0"

# name -> private module that defines it; imported on first use (PEP 562).
_LAZY = {
    "shapecheck": "._checks",
    "checks": "._checks",
    "checks_enabled": "._checks",
    "Hidden": "._checks",
    "LSTMState": "._checks",
    "Packed": "._checks",
    "guard": "._guard",
    "GuardHandle": "._guard",
    "pack": "._pack",
}

__all__ = [
    "DIMENSIONS",
    "SEQ",
    "CheckpointError",
    "DataError",
    "GuardHandle",
    "Hidden",
    "LSTMState",
    "Packed",
    "ShapeError",
    "TrainingError",
    "checks",
    "checks_enabled",
    "guard",
    "pack",
    "shapecheck",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rnnshapes' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
