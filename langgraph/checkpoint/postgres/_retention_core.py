"""RetentionCore: the I/O-free part of the savers' retention methods.

:class:`~langgraph.checkpoint.postgres.base.BasePostgresSaver` inherits it;
the savers' ``prune``, ``sweep`` and sweeper methods (``_retention_sync``,
``_retention_async``) ask it for their statements and settings. The
statements themselves are built in ``_retention`` (``prune``) and ``_sweep``
(the ``retention=`` policy and a sweep's pass).
"""

from __future__ import annotations

from collections.abc import Sequence

from langgraph.checkpoint.postgres import _retention
from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._sweep import (
    RetentionPolicy,
    SweepPass,
    check_minutes,
)

__all__ = ["RetentionCore"]


class RetentionCore:
    """The retention statements and settings of a saver, free of I/O."""

    # Set by BasePostgresSaver.__init__, which documents them.
    schema: str | None
    retention: RetentionPolicy | None

    def _prune_statements(
        self, thread_ids: Sequence[str], strategy: str, keep: int | None = None
    ) -> list[Statement]:
        """Build the ``prune`` statements (one per thread; none for no ids)."""
        return _retention.prune_statements(self.schema, thread_ids, strategy, keep)

    def _sweep_pass(self) -> SweepPass:
        """Plan a sweep by the saver's retention policy."""
        return SweepPass(self._retention_policy(), self.schema)

    def _retention_policy(self) -> RetentionPolicy:
        """The saver's retention policy; an error naming the fix without one."""
        if self.retention is None:
            raise ValueError(
                "this saver has no retention policy to sweep by: pass "
                'retention={"strategy": "delete", "default_ttl": minutes} (or '
                '"keep_latest", or "keep_last" with "keep": N) to the saver, '
                "or call prune() with the threads to prune"
            )
        return self.retention

    def _sweep_interval(self, minutes: float | None) -> float:
        """Seconds between background sweeps: ``minutes``, else the policy's."""
        policy = self._retention_policy()
        if minutes is None:
            return policy.interval_minutes * 60
        return float(check_minutes(minutes, "sweep_interval_minutes")) * 60
