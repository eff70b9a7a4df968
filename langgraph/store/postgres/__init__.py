"""LangGraph's long-term memory store in PostgreSQL (pgvector search, TTL).

>>> from langgraph.store.postgres import PostgresStore
>>> with PostgresStore.from_conn_string(DB_URI) as store:  # doctest: +SKIP
...     store.setup()
...     graph = builder.compile(store=store)
"""

from langgraph.checkpoint.postgres._pg.options import PoolConfig
from langgraph.store.postgres._sync import PostgresStore
from langgraph.store.postgres.aio import AsyncPostgresStore

__all__ = ["AsyncPostgresStore", "PoolConfig", "PostgresStore"]
