"""What every command shares: the connection options, output mode and openers.

Commands are plain click commands that take :class:`Env` (``@pass_env``) and
carry :func:`common_options`, so ``--dsn``, ``--schema`` and ``--json`` work
before the command name and after it alike.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import psycopg
from psycopg import sql
from psycopg.rows import DictRow, dict_row

from langgraph.checkpoint.postgres.cli._errors import CliError, first_line
from langgraph.checkpoint.postgres.cli._output import Output

PROG = "langgraph-postgres"
#: Environment variables read for the connection string, in order.
DSN_VARIABLES = ("POSTGRES_URI", "DATABASE_URL")
#: Seconds to wait for the server before reporting that it cannot be reached.
CONNECT_TIMEOUT = 10
APPLICATION_NAME = "langgraph-postgres-cli"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Env:
    """The options of one invocation, and how to reach its database."""

    dsn: str | None = None
    schema: str | None = None
    json_mode: bool = False

    @property
    def out(self) -> Output:
        """Where results go (made on first use, after every option is read)."""
        output = self.__dict__.get("_out")
        if output is None or output.json_mode != self.json_mode:
            output = Output(json_mode=self.json_mode)
            self.__dict__["_out"] = output
        return output

    def require_dsn(self) -> str:
        """The connection string, from ``--dsn`` or the environment."""
        if self.dsn:
            return self.dsn
        for name in DSN_VARIABLES:
            if os.environ.get(name):
                return os.environ[name]
        raise CliError(
            "no database given",
            "pass --dsn postgresql://... or set POSTGRES_URI (or DATABASE_URL)",
        )

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[DictRow]]:
        """A connection in autocommit mode, rows as dicts.

        Commands that write open their own transaction on it
        (``with conn.transaction():``), so that each change is one.
        """
        dsn = self.require_dsn()
        try:
            conn = psycopg.connect(
                dsn,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=CONNECT_TIMEOUT,
                application_name=APPLICATION_NAME,
            )
        except psycopg.Error as exc:
            # A malformed string is a ProgrammingError, an unreachable server
            # an OperationalError: to the user both are a DSN to fix.
            raise CliError(
                f"cannot connect to the database: {first_line(str(exc))}",
                "check --dsn (or POSTGRES_URI / DATABASE_URL)",
            ) from None
        with conn:
            yield conn

    def table(self, name: str) -> sql.Composable:
        """``name`` qualified with ``--schema`` when given."""
        if self.schema:
            return sql.Identifier(self.schema, name)
        return sql.Identifier(name)

    @contextmanager
    def saver(self) -> Iterator[Any]:
        """A :class:`PostgresSaver` on the database, decoding as the app does
        (``LANGGRAPH_AES_KEY`` for encrypted checkpoints)."""
        from langgraph.checkpoint.postgres import PostgresSaver
        from langgraph.checkpoint.postgres.cli._serde import serializer

        serde = serializer()
        with self.connect() as conn:
            # dict rows are the CLI's; the saver reads tuples.
            conn.row_factory = psycopg.rows.tuple_row  # type: ignore[assignment]
            yield PostgresSaver(conn, serde=serde, schema=self.schema)

    @contextmanager
    def store(self) -> Iterator[Any]:
        """A :class:`PostgresStore` on the database."""
        from langgraph.store.postgres import PostgresStore

        with self.connect() as conn:
            conn.row_factory = psycopg.rows.tuple_row  # type: ignore[assignment]
            yield PostgresStore(conn, schema=self.schema)


pass_env = click.make_pass_decorator(Env, ensure=True)


def _setter(attribute: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        # Unset (None/False) leaves what an earlier level of the command set.
        if value:
            setattr(ctx.ensure_object(Env), attribute, value)

    return store


def common_options(command: F) -> F:
    """Add ``--dsn``, ``--schema`` and ``--json`` to a command or group."""
    options = [
        click.option(
            "--dsn",
            metavar="URI",
            expose_value=False,
            callback=_setter("dsn"),
            help="Connection string (default: $POSTGRES_URI, else $DATABASE_URL).",
        ),
        click.option(
            "--schema",
            metavar="NAME",
            expose_value=False,
            callback=_setter("schema"),
            help="Postgres schema holding the tables (default: the search_path).",
        ),
        click.option(
            "--json",
            "json_mode",
            is_flag=True,
            expose_value=False,
            callback=_setter("json_mode"),
            help="Print JSON for scripts instead of tables.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command
