"""Devices: ``rnn_device`` over the fixed order cpu, cuda; CUDA tests skipped visibly, or failed when demanded.

Whether CUDA is usable needs torch, so it is looked up only when some collected test needs CUDA."""

from typing import Any

import pytest

from ._options import settings

_CUDA_REASON: list[str | None] = []  # cached per process: None = CUDA usable


def _cuda_unavailable_reason() -> str | None:
    if not _CUDA_REASON:
        from rnnshapes.testing import cuda_unavailable_reason  # imports torch: only when CUDA matters

        _CUDA_REASON.append(cuda_unavailable_reason())
    return _CUDA_REASON[0]


def _cuda_state() -> str | None:
    """What this process found out about CUDA, when it had to (None: not looked at; torch is not imported)."""
    if not _CUDA_REASON:
        return None
    if _CUDA_REASON[0] is not None:
        return _CUDA_REASON[0]
    import torch  # imported already: the reason was resolved

    return f"CUDA available: {torch.cuda.device_count()} GPU(s), torch {torch.__version__} (CUDA {torch.version.cuda})"


def _device_entry(item: pytest.Item) -> dict[str, Any] | None:
    """The device of a test that ``rnn_device`` or the ``rnnshapes_cuda`` marker ties to one, for the summary."""
    callspec = getattr(item, "callspec", None)
    device = callspec.params.get("rnn_device") if callspec is not None else None
    if device is None and item.get_closest_marker("rnnshapes_cuda") is not None:
        device = "cuda"
    if device is None:
        return None
    return {"device": str(device), "cuda": _cuda_state()}


def _skip_reason(config: pytest.Config) -> str | None:
    """Why a CUDA test is skipped in this run (None: it runs, or fails when CUDA was demanded but is absent)."""
    s = settings(config)
    if s.device == "cpu":
        return "needs CUDA, but --rnnshapes-device=cpu runs on the CPU only"
    if s.cuda_demanded:
        return None
    reason = _cuda_unavailable_reason()
    if reason is None:
        return None
    return f"{reason}; skipped under --rnnshapes-device=auto (--rnnshapes-device=cuda makes this an error)"


def _require_cuda(config: pytest.Config) -> None:
    """Skip (auto, cpu) or fail (cuda/all demanded) the current test when CUDA is absent."""
    __tracebackhide__ = True
    skip = _skip_reason(config)
    if skip is not None:
        pytest.skip(skip)
    reason = _cuda_unavailable_reason()
    if reason is not None:
        s = settings(config)
        pytest.fail(
            f"{reason}; but CUDA was demanded by rnnshapes device={s.device} ({s.device_source}). Run on a "
            "machine with a GPU, or use --rnnshapes-device=auto to skip CUDA tests where it is absent",
            pytrace=False,
        )


def _parametrized_by_user(metafunc: pytest.Metafunc) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if "rnn_device" in names:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rnn_device" not in metafunc.fixturenames or _parametrized_by_user(metafunc):
        return
    definitions = getattr(metafunc, "_arg2fixturedefs", {}).get("rnn_device") or ()
    own = definitions[-1] if definitions else None
    if (
        own is not None
        and getattr(own.func, "__module__", __name__) != __name__
        and "rnn_device" not in own.argnames
    ):
        return  # the project's own rnn_device fixture replaces the plugin's (one that wraps it keeps the devices)
    devices = list(settings(metafunc.config).devices)
    metafunc.parametrize("rnn_device", devices, indirect=True, ids=devices, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cuda_items = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("rnn_device") == "cuda":
            item.add_marker(pytest.mark.rnnshapes_cuda)
        if item.get_closest_marker("rnnshapes_cuda") is not None:
            cuda_items.append(item)
    if cuda_items:  # (torch is imported here only when some test needs CUDA)
        reason = _skip_reason(config)
        if reason is not None:  # a visible skip, reported at the test's own location
            for item in cuda_items:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("rnnshapes_cuda") is not None and settings(item.config).cuda_demanded:
        _require_cuda(item.config)  # fails when CUDA is absent: demanded, so never a skip


@pytest.fixture(scope="session")
def rnn_device(request: pytest.FixtureRequest) -> str:
    """The device of this test: ``"cpu"`` or ``"cuda"`` (parametrised by ``--rnnshapes-device``).

    A cuda test is skipped with the reason when CUDA is absent, or fails when CUDA was demanded
    (``--rnnshapes-device=cuda`` or ``all``)."""
    device = getattr(request, "param", None) or settings(request.config).devices[0]
    if device == "cuda":
        _require_cuda(request.config)
    return str(device)
