"""Integrity checks on a saver's tables, and refusals injected into them,
through a plain connection."""

from __future__ import annotations

import psycopg
from psycopg import sql

# Blobs that no checkpoint of their thread and namespace references.
ORPHAN_BLOBS_SQL = """
SELECT count(*) FROM checkpoint_blobs b
WHERE NOT EXISTS (
    SELECT 1 FROM checkpoints c
    WHERE c.thread_id = b.thread_id
        AND c.checkpoint_ns = b.checkpoint_ns
        AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version
)
"""

ORPHAN_WRITES_SQL = """
SELECT count(*) FROM checkpoint_writes w
WHERE NOT EXISTS (
    SELECT 1 FROM checkpoints c
    WHERE c.thread_id = w.thread_id
        AND c.checkpoint_ns = w.checkpoint_ns
        AND c.checkpoint_id = w.checkpoint_id
)
"""


def orphans(uri: str) -> tuple[int, int]:
    """(blobs no checkpoint references, writes without their checkpoint)."""
    with psycopg.connect(uri) as conn:
        (blobs,) = conn.execute(ORPHAN_BLOBS_SQL).fetchone()
        (writes,) = conn.execute(ORPHAN_WRITES_SQL).fetchone()
    return blobs, writes


def refuse_inserts(uri: str, table: str, message: str, when: str = "TRUE") -> None:
    """Make the server refuse, raising ``message``, each row inserted into
    ``table`` for which the SQL condition ``when`` (on ``NEW``) holds."""
    function = sql.Identifier(f"lgcp_refuse_{table}")
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                """
                CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF {when} THEN
                        RAISE EXCEPTION {message};
                    END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER {trigger} BEFORE INSERT ON {table}
                    FOR EACH ROW EXECUTE FUNCTION {function}();
                """
            ).format(
                function=function,
                when=sql.SQL(when),
                message=sql.Literal(message),
                trigger=function,
                table=sql.Identifier(table),
            )
        )
