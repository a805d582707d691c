"""rnnshapes: recurrent networks in PyTorch that are hard to get wrong.

``import rnnshapes`` stays light: torch, jaxtyping and beartype are imported only when a checked name is first
used (the pytest plugin relies on this). The public face is listed in ``__all__``; the sub-packages
``rnnshapes.models``, ``rnnshapes.data``, ``rnnshapes.train``, ``rnnshapes.lessons`` and
``rnnshapes.testing`` are imported directly.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .core._errors import CheckpointError as CheckpointError
from .core._errors import DataError as DataError
from .core._errors import ShapeError as ShapeError
from .core._errors import TrainingError as TrainingError
from .core._vocab import DIMENSIONS as DIMENSIONS
from .core._vocab import SEQ as SEQ
from .core._vocab import __doc__ as _vocabulary

__doc__ = f"{__doc__}\n{_vocabulary}"  # help(rnnshapes) shows the shape vocabulary, written once in _vocab

if TYPE_CHECKING:
    from .core._checks import shapecheck as shapecheck
    from .core._guard import GuardHandle as GuardHandle
    from .core._guard import guard as guard
    from .core._pack import pack as pack
    from .core._specs import Hidden as Hidden
    from .core._specs import LSTMState as LSTMState
    from .core._specs import Packed as Packed
    from .core._switch import checks as checks
    from .core._switch import checks_enabled as checks_enabled
    from .core._trace import trace as trace
    from .core._trace_format import Trace as Trace
    from .core._trace_format import TracedCall as TracedCall
    from .core._trace_format import TracedTensor as TracedTensor

__version__ = "0.1.0"

# name -> private module that defines it; imported on first use (PEP 562).
_LAZY = {
    "shapecheck": ".core._checks",
    "checks": ".core._switch",
    "checks_enabled": ".core._switch",
    "Hidden": ".core._specs",
    "LSTMState": ".core._specs",
    "Packed": ".core._specs",
    "guard": ".core._guard",
    "GuardHandle": ".core._guard",
    "pack": ".core._pack",
    "trace": ".core._trace",
    "Trace": ".core._trace_format",
    "TracedCall": ".core._trace_format",
    "TracedTensor": ".core._trace_format",
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
    "Trace",
    "TracedCall",
    "TracedTensor",
    "TrainingError",
    "checks",
    "checks_enabled",
    "guard",
    "pack",
    "shapecheck",
    "trace",
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
