"""A statement and its parameters, and steps: statements decided as they run."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple


class Statement(NamedTuple):
    """A SQL statement and its parameters, ready for ``cursor.execute``.

    ``fetch`` marks a statement whose rows the caller wants back (setup steps
    use it; other statements are simply fetched or not by the method running
    them).
    """

    sql: str
    params: dict[str, Any]
    fetch: bool = False


#: A sequence of statements decided as it runs: the saver executes each
#: statement it yields and sends back the rows (for ``fetch`` statements), so
#: that the decisions stay here, free of I/O. The generator's return value
#: tells the saver what to do next.
Steps = Generator[Statement, "list[Any] | None", Any]
