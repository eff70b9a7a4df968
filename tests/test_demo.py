"""``make demo`` (bench/demo.py) runs and shows what it promises: a chat kept
by the saver, and a memory found again by meaning through the store."""

from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path
from types import ModuleType

from tests.stores import require_pgvector

DEMO = Path(__file__).resolve().parent.parent / "bench" / "demo.py"


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_chat(db_uri: str) -> None:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        load_demo().run(db_uri)
    assert "turns: 3" in output.getvalue()
    assert "checkpoints: 9" in output.getvalue()


def test_the_demo_memory(db_uri: str) -> None:
    require_pgvector(db_uri)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        load_demo().run_memory(db_uri)
    lines = output.getvalue().splitlines()
    milk = next(line for line in lines if "what milk" in line)
    allergy = next(line for line in lines if "food allergy" in line)
    assert "oat milk (score" in milk
    assert "allergic to peanuts (score" in allergy
    assert "store_vectors: 2" in lines


def test_the_demo_shows_its_thread_from_a_shell(db_uri: str) -> None:
    demo = load_demo()
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        demo.run(db_uri)
        demo.run_cli(db_uri)
    tour = output.getvalue().split("== the same thread from a shell")[1]
    lines = tour.splitlines()
    assert "$ langgraph-postgres threads" in lines
    assert any(line.split()[:3] == ["demo", "│", "9"] for line in lines), tour
    assert "$ langgraph-postgres history demo" in lines
    assert "$ langgraph-postgres show demo" in lines
    assert "turns: 3" in lines
