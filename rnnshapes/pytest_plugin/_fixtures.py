"""The per-test fixtures: ``rnn_seed``, ``rnn_threads``, ``rnn_budget``, ``rnn_train_record`` and ``rnn_checks``
(``rnnshapes.testing`` bound to the test)."""

import random
import zlib
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from ._devices import _cuda_state, _require_cuda
from ._options import Budget, settings
from ._report import DEVICE_KEY, make_record, record_training

# ---------------------------------------------------------------------------------------------------------------
# Seeds, threads, budget


def seed_for(config: pytest.Config, nodeid: str) -> int:
    """The seed of a test: the base seed plus a stable offset from its node id (crc32, below 100000)."""
    return (
        settings(config).seed + zlib.crc32(nodeid.encode()) % 100_000
    ) % 2**63  # torch.manual_seed's int64


@pytest.fixture
def rnn_seed(request: pytest.FixtureRequest) -> int:
    """Seed python's ``random`` and torch (all devices) for this test; returns the seed.

    The seed is ``--rnnshapes-seed`` plus a stable per-test offset (crc32 of the node id), so a test gets
    the same seed on every run and every xdist worker, and different tests get different ones. Under
    pytest-randomly, which reseeds ``random`` just before each test body runs, python's ``random`` is seeded
    again with this seed at that moment (``pytest_pyfunc_call``), so the promise holds there too."""
    seed = seed_for(request.config, request.node.nodeid)
    random.seed(seed)
    import torch

    torch.manual_seed(seed)
    request.node.stash[_PYTHON_SEED] = seed
    return seed


_PYTHON_SEED = pytest.StashKey[int]()


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, Any, Any]:
    """Right before the test body, after every ``pytest_runtest_call`` (pytest-randomly reseeds there)."""
    seed = pyfuncitem.stash.get(_PYTHON_SEED, None)
    if seed is not None and pyfuncitem.config.pluginmanager.has_plugin("randomly"):
        random.seed(seed)
    return (yield)


@pytest.fixture
def rnn_threads(request: pytest.FixtureRequest) -> Iterator[int]:
    """Set ``torch.set_num_threads(--rnnshapes-threads)`` for this test and restore the old count after."""
    import torch

    threads = settings(request.config).threads
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(old)


@pytest.fixture(scope="session")
def rnn_budget(request: pytest.FixtureRequest) -> Budget:
    """The ``--rnnshapes-budget`` profile (``budget.scale_steps(n)``, ``budget.scale_seconds(s)``)."""
    return settings(request.config).budget


# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def rnn_train_record(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    """``record(result=None, *, name, device, steps, seconds, metric, target, reached, mode, curve, no_gradient)``:
    record a training of this test for the end-of-run table (and the failure report section). Pass a
    ``ConvergenceResult`` or the fields (``no_gradient``: the groups of parameters that never learned); the
    device defaults to this test's ``rnn_device``."""

    def record(result: Any = None, **fields: Any) -> dict[str, Any]:
        rec = make_record(result, **fields)
        record_training(request, rec)
        return rec

    return record


# ---------------------------------------------------------------------------------------------------------------
# Checks bound to a test


class RnnChecks:
    """``rnnshapes.testing`` bound to one test (the ``rnn_checks`` fixture).

    Every check of ``rnnshapes.testing`` is available as an attribute. On top of that:

    * ``check_converges`` / ``check_overfits_batch`` train with ``--rnnshapes-threads`` CPU threads (restored
      after), their step and time budgets (``max_steps``, ``max_seconds``, ``steps``) scaled by
      ``--rnnshapes-budget`` (write them for ``ci``; scaling them with ``rnn_budget`` too would scale twice),
      and record the training with its threads and scaled budgets (end-of-run table, failure section);
    * ``check_device_parity`` skips when CUDA is absent (fails when it was demanded);
    * checks that take a ``seed`` get this test's ``rnn_seed`` unless given one;
    * ``device`` and ``seed`` are this test's; ``to_device(obj)`` moves inputs there (lengths stay on the CPU).
    """

    def __init__(self, request: pytest.FixtureRequest, device: str, seed: int) -> None:
        import rnnshapes.testing

        self._request = request
        self._testing = rnnshapes.testing
        self.device = device
        self.seed = seed

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._testing, name)
        if not (name.startswith("check_") and callable(value)):
            return value
        import functools
        import inspect

        if "seed" not in inspect.signature(value).parameters:
            return value

        @functools.wraps(value)
        def seeded(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            kwargs.setdefault("seed", self.seed)
            return value(*args, **kwargs)

        return seeded

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._testing.__all__))

    def to_device(self, obj: Any) -> Any:
        import torch

        from rnnshapes.testing._calls import to_device

        return to_device(obj, torch.device(self.device))

    def _train(self, check: str, steps_arg: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run a training check under ``--rnnshapes-threads`` CPU threads, its step and time budgets scaled by
        ``--rnnshapes-budget``, and record the training with the threads and budgets it had."""
        __tracebackhide__ = True
        import inspect

        from rnnshapes.train import torch_threads

        s = settings(self._request.config)
        run = getattr(self._testing, check)
        param = inspect.signature(run).parameters.get(steps_arg)
        steps = kwargs.get(steps_arg, None if param is None else param.default)
        if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1:  # else the check says why
            kwargs[steps_arg] = s.budget.scale_steps(steps)
        seconds = kwargs.get("max_seconds")
        if isinstance(seconds, (int, float)) and seconds > 0:
            kwargs["max_seconds"] = s.budget.scale_seconds(seconds)
        budget = {
            "budget": s.budget.name,
            "threads": s.threads,
            "max_steps": kwargs.get(steps_arg),
            "max_seconds": kwargs.get("max_seconds"),
        }
        try:
            with torch_threads(s.threads):
                result = run(*args, **kwargs)
        except self._testing.ConvergenceFailed as e:
            self._record(e.result, budget)
            raise
        self._record(result, budget)
        return result

    def _record(self, result: Any, budget: dict[str, Any]) -> None:
        record = make_record(result, device=self.device)
        record.update(budget)
        record_training(self._request, record)

    def check_converges(self, *args: Any, **kwargs: Any) -> Any:
        """``rnnshapes.testing.check_converges`` with ``max_steps`` and ``max_seconds`` scaled by the budget
        profile, run with ``--rnnshapes-threads`` CPU threads, and recorded."""
        __tracebackhide__ = True
        kwargs.setdefault("name", self._request.node.name)
        return self._train("check_converges", "max_steps", args, kwargs)

    def check_overfits_batch(self, *args: Any, **kwargs: Any) -> Any:
        """``rnnshapes.testing.check_overfits_batch`` with ``steps`` (given or default) scaled by the budget
        profile, run with ``--rnnshapes-threads`` CPU threads, and recorded."""
        __tracebackhide__ = True
        kwargs.setdefault("name", f"{self._request.node.name} (overfit one batch)")
        return self._train("check_overfits_batch", "steps", args, kwargs)

    def check_device_parity(self, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        kwargs.setdefault("seed", self.seed)
        node = self._request.node
        if not any(key == DEVICE_KEY for key, _ in node.user_properties):  # a CUDA test, in the summary too
            node.user_properties.append((DEVICE_KEY, {"device": "cuda", "cuda": _cuda_state()}))
        try:
            return self._testing.check_device_parity(*args, **kwargs)
        except self._testing.DeviceUnavailable:
            _require_cuda(self._request.config)  # skips, or fails when CUDA was demanded
            raise


@pytest.fixture
def rnn_checks(request: pytest.FixtureRequest, rnn_seed: int) -> RnnChecks:
    """``rnnshapes.testing`` bound to this test (see :class:`RnnChecks`): seeded with ``rnn_seed``, on this
    test's ``rnn_device`` when the test uses it (else cpu), recording what it trains."""
    device = request.getfixturevalue("rnn_device") if "rnn_device" in request.fixturenames else "cpu"
    return RnnChecks(request, device, rnn_seed)
