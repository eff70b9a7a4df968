"""``langgraph-postgres``: inspect, prune and migrate LangGraph's tables from a shell.

Installed as a console script with the package; its own dependencies (click,
rich, pycryptodome) come with the ``[cli]`` extra::

    pip install 'langgraph-postgres-saver[cli]'
    langgraph-postgres --dsn postgresql://localhost/app threads
    python -m langgraph.checkpoint.postgres.cli history my-thread --json

This module imports nothing beyond the standard library, so that a missing
extra is reported as one line instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: The dependencies the ``[cli]`` extra brings (import names).
EXTRA_MODULES = frozenset({"click", "rich", "Crypto"})
INSTALL_HINT = (
    "langgraph-postgres needs the [cli] extra: "
    "pip install 'langgraph-postgres-saver[cli]'"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit status: 0 on success, 1 when a command failed or found
    problems, 2 on bad usage or a missing ``[cli]`` extra.
    """
    try:
        from langgraph.checkpoint.postgres.cli._main import run
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in EXTRA_MODULES:
            raise
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    return run(list(sys.argv[1:] if argv is None else argv))


def console_main() -> None:
    """The console script's entry point: exit with :func:`main`'s status."""
    sys.exit(main())
