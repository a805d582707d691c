"""The data package's surface: its layer rule and its documented public names."""

import ast
import inspect
from pathlib import Path

import rnnshapes.data as data

DATA_DIR = Path(data.__file__).parent


def test_data_layer_imports_nothing_of_ours_but_errors():
    for path in sorted(DATA_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                assert node.module == "core._errors", f"{path.name} imports from ..{node.module}"
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not node.module.startswith("rnnshapes"), f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert all(not a.name.startswith("rnnshapes") for a in node.names), path.name


def test_public_names_are_exported_and_documented():
    assert sorted(data.__all__) == sorted(set(data.__all__))
    for name in data.__all__:
        obj = getattr(data, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"rnnshapes.data.{name} has no docstring"
            assert obj.__module__.startswith("rnnshapes.data._"), name
