"""Builds the documentation site once per test run (once per run across xdist workers) for tests/docs."""

import json
import os
from pathlib import Path

import pytest
from _docsite import SiteBuild, build_site


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docs: builds the documentation site with mkdocs (select: -m docs)")


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
