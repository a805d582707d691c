"""Self-tests of the rnnshapes pytest plugin, run through pytester in fresh directories.

``examples/`` holds a user's project (models and tests) that the tests copy into a pytester directory; it is
not collected by this suite.
"""

import pytest

collect_ignore = ["examples"]


def pytest_configure(config: pytest.Config) -> None:
    # pytester is a builtin plugin that is off by default. ``pytest_plugins = ["pytester"]`` here would be
    # refused whenever this conftest is not an initial one (pytest 9: "Defining 'pytest_plugins' in a
    # non-top-level conftest is no longer supported", e.g. for a plain `pytest` of the whole suite), so it is
    # registered here instead; its late options get their defaults. A `pytest_plugins = ["pytester"]` in the
    # top-level tests/conftest.py makes this a no-op.
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


@pytest.fixture(autouse=True)
def _inner_runs_in_file_order(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pytester run sits in a temporary folder, outside this project's ``addopts = -p no:randomly``: keep
    pytest-randomly (installed for ``make random-order``) from shuffling the inner runs these tests read."""
    if "pytester" not in request.fixturenames:
        return
    pytester = request.getfixturevalue("pytester")
    run = pytester.runpytest_subprocess
    monkeypatch.setattr(
        pytester, "runpytest_subprocess", lambda *args, **kw: run("-p", "no:randomly", *args, **kw)
    )
