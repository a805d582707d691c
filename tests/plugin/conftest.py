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
