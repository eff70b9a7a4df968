"""``Conn`` and ``get_connection`` where ``langgraph-checkpoint-postgres`` has
them (sync), for code written against that package.

>>> from langgraph.checkpoint.postgres._internal import get_connection
>>> with get_connection(pool) as conn:  # doctest: +SKIP
...     conn.execute("SELECT 1")
"""

from langgraph.checkpoint.postgres._pg.opening import Conn, get_connection

__all__ = ["Conn", "get_connection"]
