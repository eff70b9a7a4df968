"""``langgraph-postgres`` as a shell user meets it: installed, helpful, and
failing in one line.

The commands' own behaviour is tested per area (``test_cli_inspect``,
``test_cli_operate``, ``test_cli_maintain``, ``test_cli_move``); the examples
in the docs by ``test_cli_docs``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from langgraph.checkpoint.postgres.cli import INSTALL_HINT
from langgraph.checkpoint.postgres.cli._main import cli
from tests.cli_support import CHAT, THREADS, run_cli

BIN = Path(sys.executable).parent


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple]:
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(_command_paths(command, (*prefix, name)))
    return paths


COMMAND_PATHS = _command_paths(cli)
#: The commands issue 19 asks for; each must exist.
REQUIRED = {
    ("threads",),
    ("history",),
    ("show",),
    ("diff",),
    ("stats",),
    ("prune",),
    ("sweep",),
    ("migrate", "status"),
    ("migrate", "up"),
    ("migrate", "sql"),
    ("doctor",),
    ("export",),
    ("import",),
    ("store", "namespaces"),
    ("store", "get"),
    ("store", "search"),
}


def _shell(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"POSTGRES_URI", "DATABASE_URL", "LANGGRAPH_AES_KEY"}
    }
    return subprocess.run(
        list(args),
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_command_of_the_issue_exists() -> None:
    assert REQUIRED <= set(COMMAND_PATHS), REQUIRED - set(COMMAND_PATHS)


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=" ".join)
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = run_cli(*path, "--help")
    assert result.code == 0, result.err
    assert result.out.startswith(f"Usage: langgraph-postgres {' '.join(path)}")
    command = cli
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    if not isinstance(command, click.Group):
        assert "Examples:" in result.out
        assert f"langgraph-postgres {path[0]}" in result.out.split("Examples:")[1]
        assert "--json" in result.out


def test_console_script_and_python_m_run_the_same_command_line(graph_db: str) -> None:
    script = _shell(str(BIN / "langgraph-postgres"), "--help")
    module = _shell(sys.executable, "-m", "langgraph.checkpoint.postgres.cli", "--help")
    assert script.returncode == module.returncode == 0
    assert script.stdout == module.stdout
    listed = _shell(
        str(BIN / "langgraph-postgres"), "threads", env={"POSTGRES_URI": graph_db}
    )
    assert listed.returncode == 0, listed.stderr
    for thread in THREADS:
        assert thread in listed.stdout
    # Piped output is plain text: no colour codes for grep to trip on.
    assert "\x1b[" not in listed.stdout


def test_a_missing_cli_extra_is_one_line_naming_the_install() -> None:
    code = (
        "import sys; sys.modules['rich'] = None; "
        "from langgraph.checkpoint.postgres.cli import main; "
        "sys.exit(main(['threads']))"
    )
    result = _shell(sys.executable, "-c", code)
    assert result.returncode == 2
    assert result.stderr == INSTALL_HINT + "\n"
    assert "pip install 'langgraph-postgres-saver[cli]'" in result.stderr


def test_no_database_given_says_how_to_give_one() -> None:
    result = run_cli("threads")
    assert result.code == 1
    assert result.err == (
        "error: no database given; pass --dsn postgresql://... or set "
        "POSTGRES_URI (or DATABASE_URL)\n"
    )


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://postgres@127.0.0.1:1/nowhere",
        "this is not a connection string",
        "postgresql://postgres@127.0.0.1:5432/no_such_database_here",
    ],
)
def test_a_bad_dsn_is_one_line_without_a_traceback(dsn: str) -> None:
    result = run_cli("threads", dsn=dsn)
    assert result.code == 1
    assert result.out == ""
    assert result.err.count("\n") == 1, result.err
    assert result.err.startswith("error: cannot connect to the database: ")
    assert "check --dsn" in result.err
    assert "Traceback" not in result.err


def test_the_dsn_comes_from_the_option_then_postgres_uri_then_database_url(
    graph_db: str,
) -> None:
    bad = "postgresql://postgres@127.0.0.1:1/nowhere"
    by_env = run_cli("threads", "--json", env={"POSTGRES_URI": graph_db})
    by_url = run_cli("threads", "--json", env={"DATABASE_URL": graph_db})
    by_option = run_cli("threads", "--json", dsn=graph_db, env={"POSTGRES_URI": bad})
    first = run_cli(
        "threads", "--json", env={"POSTGRES_URI": graph_db, "DATABASE_URL": bad}
    )
    assert by_env.json() == by_url.json() == by_option.json() == first.json()
    assert run_cli("threads", env={"DATABASE_URL": bad}).code == 1


def test_options_work_before_and_after_the_command(graph_db: str) -> None:
    before = run_cli("--json", "history", CHAT, dsn=graph_db)
    after = run_cli("history", CHAT, "--json", f"--dsn={graph_db}")
    assert before.json() == after.json()


def test_an_unknown_command_is_a_usage_error() -> None:
    result = run_cli("frobnicate")
    assert result.code == 2
    assert "No such command 'frobnicate'" in result.err
