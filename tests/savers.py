"""Ways to build a saver that the tests run everything through.

Each kind is a way users connect: one connection, a pool (with the settings
the docs recommend, and with psycopg's defaults: no autocommit, tuple rows),
and a pipeline on one connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

SYNC_KINDS = ["conn", "pool", "pool-defaults", "pipeline"]
ASYNC_KINDS = ["aconn", "apool", "apool-defaults", "apipeline"]

_RECOMMENDED = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


@contextmanager
def sync_saver(kind: str, uri: str, **options: Any) -> Iterator[PostgresSaver]:
    """Yield a :class:`PostgresSaver` on ``uri`` connected the ``kind`` way.

    ``options`` go to the saver's constructor (``schema=``, ``timeout=``).
    """
    if kind == "conn":
        with Connection.connect(uri, **_RECOMMENDED) as conn:
            yield PostgresSaver(conn, **options)
    elif kind == "pipeline":
        with Connection.connect(uri, **_RECOMMENDED) as conn, conn.pipeline() as pipe:
            yield PostgresSaver(conn, pipe, **options)
    elif kind in ("pool", "pool-defaults"):
        kwargs = _RECOMMENDED if kind == "pool" else {}
        with ConnectionPool(uri, min_size=1, max_size=4, kwargs=kwargs) as pool:
            yield PostgresSaver(pool, **options)
    else:
        raise ValueError(f"unknown sync saver kind {kind!r}")


@asynccontextmanager
async def async_saver(
    kind: str, uri: str, **options: Any
) -> AsyncIterator[AsyncPostgresSaver]:
    """Yield an :class:`AsyncPostgresSaver` on ``uri`` connected the ``kind`` way."""
    if kind == "aconn":
        async with await AsyncConnection.connect(uri, **_RECOMMENDED) as conn:
            yield AsyncPostgresSaver(conn, **options)
    elif kind == "apipeline":
        async with await AsyncConnection.connect(uri, **_RECOMMENDED) as conn:
            async with conn.pipeline() as pipe:
                yield AsyncPostgresSaver(conn, pipe, **options)
    elif kind in ("apool", "apool-defaults"):
        kwargs = _RECOMMENDED if kind == "apool" else {}
        async with AsyncConnectionPool(
            uri, min_size=1, max_size=4, kwargs=kwargs, open=False
        ) as pool:
            yield AsyncPostgresSaver(pool, **options)
    else:
        raise ValueError(f"unknown async saver kind {kind!r}")


# What a test saves, as a generator of (method, args), sent back each result:
# one scenario serves both savers.
Saves = Generator[tuple[str, tuple[Any, ...]], Any, Any]


def run_saves(saver: PostgresSaver, saves: Saves) -> Any:
    """Call the sync ``saver``'s methods as ``saves`` asks; return its result."""
    result = None
    try:
        while True:
            method, args = saves.send(result)
            result = getattr(saver, method)(*args)
    except StopIteration as done:
        return done.value


async def arun_saves(saver: AsyncPostgresSaver, saves: Saves) -> Any:
    """Await the async ``saver``'s ``a``-methods as ``saves`` asks."""
    result = None
    try:
        while True:
            method, args = saves.send(result)
            result = await getattr(saver, "a" + method)(*args)
    except StopIteration as done:
        return done.value


def run_setup(uri: str, kind: str) -> None:
    """``setup()`` of a ``kind`` (sync or async) saver on its own connection."""
    if kind == "sync":
        with PostgresSaver.from_conn_string(uri) as saver:
            saver.setup()
        return

    async def run() -> None:
        async with AsyncPostgresSaver.from_conn_string(uri) as saver:
            await saver.setup()

    asyncio.run(run())
