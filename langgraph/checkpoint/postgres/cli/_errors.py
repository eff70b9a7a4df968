"""How the command line reports failures: one line on stderr, never a traceback."""

from __future__ import annotations

import click
import psycopg


class CliError(click.ClickException):
    """A failure the user can fix: printed as ``error: <message>`` and exit 1.

    Give the problem and, where there is one, the fix::

        raise CliError("no thread 'abc'", "see `langgraph-postgres threads`")
    """

    exit_code = 1

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message if fix is None else f"{message}; {fix}")


class ProblemsFound(click.ClickException):
    """A command ran and found problems (``doctor``): its report is already
    printed, so only the exit status is left to set."""

    exit_code = 1

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} problem(s) found")


def first_line(text: str) -> str:
    """The first non-empty line of a (server) message.

    >>> first_line('relation "x" does not exist\\nLINE 1: SELECT ...')
    'relation "x" does not exist'
    """
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text.strip()


def describe_database_error(exc: psycopg.Error) -> str:
    """The one-line message for a database error, with what to do about it."""
    message = first_line(str(exc)) or type(exc).__name__
    if isinstance(exc, psycopg.OperationalError) and not isinstance(
        exc, psycopg.errors.QueryCanceled
    ):
        return (
            f"cannot connect to the database: {message}; check --dsn "
            "(or POSTGRES_URI / DATABASE_URL)"
        )
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return (
            f"{message}; are the tables in another schema (--schema), or has "
            "setup() not run yet (`langgraph-postgres migrate status`)?"
        )
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return f"{message}; connect as a role that may read the tables"
    return message
