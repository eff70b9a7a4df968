"""The langgraph-checkpoint-conformance suite, against both savers.

The suite drives only the async methods, so the sync saver runs through a
small adapter whose ``a*`` methods call the sync ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES

from langgraph.checkpoint.postgres import PostgresSaver
from tests.conftest import Databases
from tests.savers import async_saver, sync_saver


class SyncAsAsync(BaseCheckpointSaver):
    """Exposes a sync saver through the async interface the suite calls."""

    def __init__(self, inner: PostgresSaver) -> None:
        super().__init__(serde=inner.serde)
        self.inner = inner

    def get_next_version(self, current: Any, channel: None = None) -> Any:
        return self.inner.get_next_version(current, channel)

    async def aget_tuple(self, config: Any) -> CheckpointTuple | None:
        return self.inner.get_tuple(config)

    async def alist(self, config: Any, **kwargs: Any) -> AsyncIterator[CheckpointTuple]:
        for item in self.inner.list(config, **kwargs):
            yield item

    async def aput(
        self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any
    ) -> Any:
        return self.inner.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: Any,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.inner.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.inner.delete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        self.inner.delete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.inner.copy_thread(source_thread_id, target_thread_id)

    async def aprune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
    ) -> None:
        self.inner.prune(thread_ids, strategy=strategy)


def _run_report(report: Any, capabilities: Iterator[str]) -> None:
    report_lines = []
    failed = []
    for cap in capabilities:
        result = report.results[cap]
        report_lines.append(
            f"{cap}: detected={result.detected} passed={result.tests_passed} "
            f"failed={result.tests_failed}"
        )
        if not result.detected or not result.passed:
            failed.append((cap, result.failures))
    print("\n".join(report_lines))
    assert not failed, failed
    # The suite version we pin has 81 tests; a newer one may only add more.
    assert sum(report.results[c].tests_passed for c in ALL) >= 81


ALL = sorted(c.value for c in ALL_CAPABILITIES)


async def assert_conformance(
    name: str, factory: Callable[[], AsyncIterator[BaseCheckpointSaver]]
) -> None:
    """Run every capability of the conformance suite against the savers that
    ``factory`` yields, and fail with the report unless all pass."""
    registered = checkpointer_test(name=name)(factory)
    report = await validate(registered, capabilities=set(ALL))
    _run_report(report, iter(ALL))


@pytest.mark.parametrize("kind", ["conn", "pool", "pipeline"])
async def test_sync_saver_conformance(databases: Databases, kind: str) -> None:
    async def factory() -> AsyncIterator[BaseCheckpointSaver]:
        with sync_saver(kind, databases.create()) as saver:
            yield SyncAsAsync(saver)

    await assert_conformance(f"PostgresSaver[{kind}]", factory)


@pytest.mark.parametrize("kind", ["aconn", "apool", "apipeline"])
async def test_async_saver_conformance(databases: Databases, kind: str) -> None:
    async def factory() -> AsyncIterator[BaseCheckpointSaver]:
        async with async_saver(kind, databases.create()) as saver:
            yield saver

    await assert_conformance(f"AsyncPostgresSaver[{kind}]", factory)


@pytest.mark.parametrize("kind", ["pool", "apool"])
async def test_conformance_in_a_named_schema(databases: Databases, kind: str) -> None:
    # The tables live in "tenant_x" only: setup() creates them there, and the
    # search_path (public) has none, so any unqualified access would fail.
    async def factory() -> AsyncIterator[BaseCheckpointSaver]:
        uri = databases.create(migrated=False)
        if kind == "pool":
            with sync_saver(kind, uri, schema="tenant_x") as saver:
                saver.setup()
                yield SyncAsAsync(saver)
        else:
            async with async_saver(kind, uri, schema="tenant_x") as asaver:
                await asaver.setup()
                yield asaver

    await assert_conformance(f"schema tenant_x [{kind}]", factory)
