"""The interpreter that has the existing package, langgraph-checkpoint-postgres
3.2.0, for the tests that run it beside ours (it owns the same import paths,
so it lives in a virtualenv of its own; CI prepares one)."""

from __future__ import annotations

import os

import pytest


def upstream_python(needed_for: str = "") -> str:
    """``UPSTREAM_PYTHON``; without it the calling test skips, or fails when
    ``REQUIRE_UPSTREAM=1`` (CI). ``needed_for`` says what the test needs it
    for, in the skip reason."""
    path = os.environ.get("UPSTREAM_PYTHON")
    if path:
        return path
    reason = (
        "UPSTREAM_PYTHON is unset: point it at a python with "
        "langgraph-checkpoint-postgres==3.2.0 installed" + needed_for
    )
    if os.environ.get("REQUIRE_UPSTREAM") == "1":
        pytest.fail(f"REQUIRE_UPSTREAM=1 but {reason}")
    pytest.skip(reason)
