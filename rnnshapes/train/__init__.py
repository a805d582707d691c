"""Training: one loop (`fit`) with a target and a budget, its result, and checkpoints.

Used by the command line, the pytest fixtures and the benchmarks alike; it knows nothing of particular
lessons (``rnnshapes.lessons`` holds those).
"""

from ._checkpoint import load_checkpoint as load_checkpoint
from ._checkpoint import save_checkpoint as save_checkpoint
from ._fit import Budget as Budget
from ._fit import CurvePoint as CurvePoint
from ._fit import Target as Target
from ._fit import TrainResult as TrainResult
from ._fit import fit as fit
from ._fit import seed_everything as seed_everything
from ._fit import torch_threads as torch_threads

__all__ = [
    "Budget",
    "CurvePoint",
    "Target",
    "TrainResult",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "seed_everything",
    "torch_threads",
]
