"""The package's exceptions. Torch-free, so that every layer (and the pytest plugin) can import them cheaply."""


class ShapeError(TypeError):
    """A tensor reached a checked call with the wrong shape, dtype, device or structure.

    The message is written to be read alone: the function and argument, the expected shape with each named
    dimension and its bound value, the actual shape, the first mismatched axis, where each bound value came
    from, and a hint for the usual mistake behind it. It is raised without a chained cause on purpose.
    """


class DataError(RuntimeError):
    """A lesson data file is missing, corrupt, or holds something the loader cannot use."""


class TrainingError(RuntimeError):
    """Training could not go on (for example the loss became NaN or infinite)."""


class CheckpointError(RuntimeError):
    """A checkpoint file is corrupt, or was saved for another model or configuration."""


# Tracebacks and pytest reports name the public path (rnnshapes.ShapeError), not this private module.
for _error in (ShapeError, DataError, TrainingError, CheckpointError):
    _error.__module__ = "rnnshapes"

del _error
