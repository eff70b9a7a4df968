"""The ``langgraph-postgres`` group: its commands, and how failures print."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click
import psycopg

from langgraph.checkpoint.postgres.cli import (
    _doctor,
    _migrate,
    _retention,
    _show,
    _stats,
    _store,
    _threads,
    _transfer,
)
from langgraph.checkpoint.postgres.cli._app import PROG, Env, common_options
from langgraph.checkpoint.postgres.cli._errors import (
    CliError,
    ProblemsFound,
    describe_database_error,
    first_line,
)

#: Set to get the traceback of an unexpected failure instead of one line.
DEBUG_VARIABLE = "LANGGRAPH_POSTGRES_DEBUG"
#: Exit status after Ctrl-C, as shells report SIGINT.
INTERRUPTED = 130


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@common_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Inspect, prune and migrate the tables of LangGraph's Postgres checkpointer
    and store.

    Reads only, unless a command says it writes; writing commands show a dry
    run unless given --yes.

    \b
    Examples:
      langgraph-postgres --dsn postgresql://localhost/app threads
      langgraph-postgres history my-thread --json
      POSTGRES_URI=postgresql://localhost/app langgraph-postgres doctor
    """
    ctx.ensure_object(Env)


for _module in (
    _threads,
    _show,
    _stats,
    _doctor,
    _retention,
    _migrate,
    _transfer,
    _store,
):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def _fail(message: str) -> int:
    click.echo(f"error: {message}", err=True)
    return 1


def run(argv: Sequence[str]) -> int:
    """Run one command line; return its exit status, printing failures as one
    line on stderr."""
    try:
        result = cli.main(args=list(argv), prog_name=PROG, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        return INTERRUPTED
    except CliError as exc:
        return _fail(exc.format_message())
    except ProblemsFound as exc:
        # The report that found them is printed; its last line counts them.
        return exc.exit_code
    except click.ClickException as exc:  # usage errors: click's own message
        exc.show()
        return exc.exit_code
    except psycopg.Error as exc:
        return _fail(describe_database_error(exc))
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        # The reader (``| head``) went away; nothing left to say.
        sys.stderr.close()
        return 1
    except Exception as exc:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        return _fail(
            f"{type(exc).__name__}: {first_line(str(exc))} "
            f"(set {DEBUG_VARIABLE}=1 for the traceback)"
        )
    return result if isinstance(result, int) else 0
