"""Builds the documentation site once per test run (once per run across xdist workers) for tests/docs, and
runs the pytest-plugin page's example file under the plugin, overlapping with the build."""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _docsite import ExampleRun, SiteBuild, build_site

EXAMPLE_TEST_FILE = "test_plugin_example.py"  # the test that reads the example's run


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docs: builds the documentation site with mkdocs (select: -m docs)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The example's run (a fresh pytest process, several seconds) starts with the first test of tests/docs and
    # runs beside the docs build; the test that reads it goes last, so that it rarely has to wait.
    items.sort(key=lambda item: item.path.name == EXAMPLE_TEST_FILE and item.path.parent.name == "docs")


@pytest.fixture(scope="session")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExampleRun]:
    """pytest on docs/examples/test_tagger.py under the plugin, in a fresh process (see ``ExampleRun``)."""
    run = ExampleRun(tmp_path_factory.mktemp("example"))
    yield run
    if run.process.poll() is None:  # never read (the session was cut short)
        run.process.kill()
        run.process.communicate()


@pytest.fixture(scope="session", autouse=True)
def _start_the_example_early(request: pytest.FixtureRequest) -> None:
    """Start the example's run with the first test of tests/docs when this process will read it (under xdist
    the worker that gets the test starts it when it comes)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is not None:
        return
    if any(item.path.name == EXAMPLE_TEST_FILE for item in request.session.items):
        request.getfixturevalue("example_run")


@pytest.fixture(scope="session")
def site_build(tmp_path_factory: pytest.TempPathFactory) -> SiteBuild:
    """The site built with ``mkdocs build --strict`` into a temporary folder (never into ./site)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return build_site(tmp_path_factory.mktemp("docs"))
    # Under xdist the workers share one build: the parent of the base temp folder is common to this run.
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent / "rnnshapes-docs"
    shared.mkdir(exist_ok=True)
    record = shared / "build.json"
    with FileLock(str(shared / "build.lock")):
        if record.is_file():
            data = json.loads(record.read_text(encoding="utf-8"))
            return SiteBuild(Path(data["site"]), data["returncode"], data["output"], data["seconds"])
        build = build_site(shared)
        tmp = record.with_suffix(".tmp")
        payload = {
            "site": str(build.site),
            "returncode": build.returncode,
            "output": build.output,
            "seconds": build.seconds,
        }
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(tmp, record)
        return build


@pytest.fixture(scope="session")
def site(site_build: SiteBuild) -> SiteBuild:
    """The built site; fails (with mkdocs' output) if the strict build did not succeed."""
    if site_build.returncode != 0:
        pytest.fail(
            f"mkdocs build --strict failed (exit {site_build.returncode}); its output:\n{site_build.output}",
            pytrace=False,
        )
    return site_build
