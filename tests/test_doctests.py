"""The examples in the package's docstrings run, and show what they say."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import langgraph.checkpoint.postgres as package

MODULES = [package.__name__] + sorted(
    info.name
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
)


def test_docstring_examples_run() -> None:
    failed: dict[str, int] = {}
    attempted = 0
    for name in MODULES:
        result = doctest.testmod(importlib.import_module(name))
        attempted += result.attempted
        if result.failed:
            failed[name] = result.failed
    assert not failed, f"docstring examples failed (doctest output above): {failed}"
    # Examples that need a database are marked +SKIP; the rest must be found.
    assert attempted >= 5
