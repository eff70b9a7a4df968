"""What callers configure about connections: a call's timeout, the pool that
``from_conn_string(..., pool_config=...)`` opens, and the settings of the
connections we open ourselves."""

from __future__ import annotations

import math
from typing import Any, TypedDict

from psycopg.rows import dict_row


def check_timeout(timeout: float | None) -> float | None:
    """Validate a ``timeout=`` argument (seconds, or ``None`` for no limit)."""
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not timeout > 0
        or not math.isfinite(timeout)
    ):
        raise ValueError(
            f"timeout must be a positive number of seconds or None, not {timeout!r}"
        )
    return float(timeout)


class PoolConfig(TypedDict, total=False):
    """Settings of the pool that ``from_conn_string(..., pool_config=...)`` opens.

    Each key is the psycopg_pool ``ConnectionPool`` argument of the same name;
    ``check=True`` tests a connection before handing it out, so that one the
    server or a load balancer dropped while idle is replaced, not used.
    ``kwargs`` adds connection arguments to ours (autocommit, no prepared
    statement threshold, dict rows), as ``langgraph-checkpoint-postgres``'s
    store accepts.
    """

    min_size: int
    max_size: int | None
    kwargs: dict[str, Any]
    max_idle: float
    max_lifetime: float
    timeout: float
    check: bool


#: Settings of the connections and pools we open (``from_conn_string``).
CONNECTION_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}


def pool_arguments(pool_config: PoolConfig) -> dict[str, Any]:
    """Check ``pool_config`` and turn it into pool constructor arguments."""
    unknown = set(pool_config) - set(PoolConfig.__annotations__)
    if unknown:
        raise ValueError(
            f"unknown pool_config keys {sorted(unknown)}: use "
            + ", ".join(sorted(PoolConfig.__annotations__))
        )
    arguments: dict[str, Any] = {
        k: v for k, v in pool_config.items() if k not in ("check", "kwargs")
    }
    if arguments.get("max_size") is not None and "min_size" not in arguments:
        # psycopg_pool's default min_size (4) would exceed a smaller max_size.
        arguments["min_size"] = min(4, arguments["max_size"])
    arguments["kwargs"] = {**CONNECTION_KWARGS, **(pool_config.get("kwargs") or {})}
    return arguments
