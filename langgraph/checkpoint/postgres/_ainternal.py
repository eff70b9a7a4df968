"""``Conn`` and ``get_connection`` where ``langgraph-checkpoint-postgres`` has
them (async), for code written against that package.

>>> from langgraph.checkpoint.postgres._ainternal import get_connection
>>> async with get_connection(pool) as conn:  # doctest: +SKIP
...     await conn.execute("SELECT 1")
"""

from langgraph.checkpoint.postgres._pg.opening_async import Conn, get_connection

__all__ = ["Conn", "get_connection"]
