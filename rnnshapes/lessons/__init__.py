"""The lessons of PyTorchZeroToAll lectures 12-13: each a model, its data, a recipe and a target.

    >>> from rnnshapes import lessons
    >>> result = lessons.get("hello-sequence").run(seed=0)
    >>> result.reached, result.final
    (True, {'text': 'ihello'})

Targets and budgets are measured on this project's 2-core CPU with one torch thread (see the benchmarks
page); ``budget_scale`` stretches a budget for slower machines.
"""

from ._catalog import LESSONS as LESSONS
from ._catalog import get as get
from ._catalog import names as names
from ._registry import Lesson as Lesson
from ._registry import Recipe as Recipe
from ._registry import Task as Task
from ._registry import checkpoint_path as checkpoint_path

__all__ = ["LESSONS", "Lesson", "Recipe", "Task", "checkpoint_path", "get", "names"]
