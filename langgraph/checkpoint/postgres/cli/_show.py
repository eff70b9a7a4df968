"""``show`` and ``diff``: a checkpoint's decoded state, and what changed.

Both read through the saver's ``get_tuple`` with the serializer of
:mod:`._serde` (``LANGGRAPH_AES_KEY`` for encrypted threads), so values are
what the graph saw. A ``DeltaChannel`` whose checkpoint holds no snapshot is
shown as the snapshot it starts from plus the writes the graph's reducer
folds into it (the reducer is the graph's, which the command line has not).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
from psycopg import sql
from psycopg.rows import dict_row

from langgraph.checkpoint.postgres.cli._app import PROG, Env, common_options, pass_env
from langgraph.checkpoint.postgres.cli._errors import CliError
from langgraph.checkpoint.postgres.cli._state import (
    diff_states,
    interrupt_values,
    is_state_channel,
    next_nodes,
    pending_sends,
    pretty,
    readable,
    send_node,
    state_values,
    unwrap,
    value_diff,
)
from langgraph.checkpoint.postgres.cli._threads import (
    require_checkpoint,
    require_thread,
)

# The channels this thread keeps as DeltaChannels: LangGraph counts their
# updates since the last snapshot in the metadata of the checkpoints.
DELTA_CHANNELS_SQL = """
SELECT DISTINCT
    jsonb_object_keys(metadata -> 'counters_since_delta_snapshot') AS channel
FROM {checkpoints}
WHERE thread_id = %(thread)s AND checkpoint_ns = %(ns)s
    AND jsonb_typeof(metadata -> 'counters_since_delta_snapshot') = 'object'
"""


def _config(thread_id: str, namespace: str, checkpoint_id: str | None) -> Any:
    configurable = {"thread_id": thread_id, "checkpoint_ns": namespace}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def load(
    env: Env,
    saver: Any,
    thread_id: str,
    namespace: str | None,
    checkpoint_id: str | None,
) -> Any:
    """The ``CheckpointTuple`` asked for (the latest without an id), with
    delta channels that hold no snapshot resolved; a one-line error when
    there is none."""
    conn = saver.conn
    require_thread(env, conn, thread_id)
    if checkpoint_id and namespace is None:
        namespace = require_checkpoint(env, conn, thread_id, checkpoint_id)
    namespace = namespace or ""
    item = saver.get_tuple(_config(thread_id, namespace, checkpoint_id))
    if item is None:
        what = f"checkpoint {checkpoint_id!r}" if checkpoint_id else "checkpoint"
        raise CliError(
            f"thread {thread_id!r} has no {what} in namespace {namespace!r}",
            f"see `{PROG} history {thread_id} --all-ns`",
        )
    _resolve_deltas(env, saver, item)
    return item


def _resolve_deltas(env: Env, saver: Any, item: Any) -> None:
    configurable = item.config["configurable"]
    statement = sql.SQL(DELTA_CHANNELS_SQL).format(checkpoints=env.table("checkpoints"))
    params = {"thread": configurable["thread_id"], "ns": configurable["checkpoint_ns"]}
    rows = saver.conn.cursor(row_factory=dict_row).execute(statement, params)
    values = item.checkpoint["channel_values"]
    versions = item.checkpoint.get("channel_versions") or {}
    missing = [
        r["channel"]
        for r in rows
        if r["channel"] not in values and r["channel"] in versions
    ]
    if not missing:
        return
    history = saver.get_delta_channel_history(config=item.config, channels=missing)
    for channel, entry in history.items():
        values[channel] = delta_value(
            entry.get("seed"), [w[2] for w in entry["writes"]]
        )


def delta_value(seed: Any, writes: list[Any]) -> dict[str, Any]:
    """How ``show`` presents a delta channel without a snapshot: its seed and
    the writes the graph's reducer folds into it, oldest first.

    >>> delta_value(None, [["a"], ["b"]])
    {'delta': {'seed': None, 'writes': [['a'], ['b']]}}
    """
    return {"delta": {"seed": unwrap(seed), "writes": writes}}


def checkpoint_document(item: Any) -> dict[str, Any]:
    """``show``'s document for a ``CheckpointTuple``."""
    configurable = item.config["configurable"]
    parent = (item.parent_config or {}).get("configurable", {})
    writes = item.pending_writes or []
    return {
        "thread_id": configurable["thread_id"],
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "checkpoint_id": configurable["checkpoint_id"],
        "parent_checkpoint_id": parent.get("checkpoint_id"),
        "ts": item.checkpoint.get("ts"),
        "metadata": item.metadata or {},
        "values": state_values(item.checkpoint),
        "next": next_nodes(item.checkpoint),
        "pending_writes": [
            {"task_id": task, "channel": channel, "value": value}
            for task, channel, value in writes
        ],
        "pending_sends": [
            {"node": send_node(s), "arg": getattr(s, "arg", None)}
            for s in pending_sends(item.checkpoint)
        ],
        "interrupts": interrupt_values(writes),
    }


def pick_channel(item: Any, name: str) -> Any:
    """One channel's value; a one-line error naming the channels there are."""
    values = item.checkpoint["channel_values"]
    if name not in values:
        names = ", ".join(sorted(c for c in values if is_state_channel(c))) or "none"
        raise CliError(
            f"checkpoint {item.config['configurable']['checkpoint_id']} has no "
            f"channel {name!r}",
            f"its channels: {names}",
        )
    return unwrap(values[name])


def _print_value(env: Env, name: str, value: Any) -> None:
    lines = pretty(value).splitlines() or [""]
    env.out.line(f"{name}: {lines[0]}")
    for line in lines[1:]:
        env.out.line(f"  {line}")


def _print_document(env: Env, doc: Mapping[str, Any]) -> None:
    env.out.fields(
        [
            ("thread", doc["thread_id"]),
            ("namespace", doc["checkpoint_ns"] or "(root)"),
            ("checkpoint", doc["checkpoint_id"]),
            ("parent", doc["parent_checkpoint_id"] or "(none)"),
            ("time", doc["ts"]),
            ("step", doc["metadata"].get("step")),
            ("source", doc["metadata"].get("source")),
            ("next", ", ".join(doc["next"]) or "(none)"),
        ]
    )
    for interrupt in doc["interrupts"]:
        env.out.line(f"interrupt: {pretty(interrupt)}", style="yellow")
    env.out.line()
    env.out.line("values", style="bold underline")
    for name, value in doc["values"].items():
        _print_value(env, name, value)
    if not doc["values"]:
        env.out.line("(none)", style="dim")
    if doc["pending_sends"]:
        env.out.line()
        env.out.line("pending sends", style="bold underline")
        for send in doc["pending_sends"]:
            _print_value(env, f"-> {send['node']}", send["arg"])
    if doc["pending_writes"]:
        env.out.line()
        env.out.line("pending writes", style="bold underline")
        for write in doc["pending_writes"]:
            _print_value(env, f"{write['task_id']}  {write['channel']}", write["value"])
    env.out.line()
    env.out.line("metadata", style="bold underline")
    for name, value in doc["metadata"].items():
        _print_value(env, name, value)


@click.command("show")
@click.argument("thread_id", metavar="THREAD")
@click.argument("checkpoint_id", metavar="[CHECKPOINT]", required=False)
@click.option("--channel", metavar="NAME", help="Print only this channel's value.")
@click.option(
    "--ns",
    "namespace",
    default=None,
    metavar="NS",
    help='Checkpoint namespace (default: the root graph\'s, "", or the '
    "CHECKPOINT's own).",
)
@common_options
@pass_env
def show_command(
    env: Env,
    thread_id: str,
    checkpoint_id: str | None,
    channel: str | None,
    namespace: str | None,
) -> None:
    """A checkpoint's decoded state (default: the thread's latest).

    Prints the checkpoint's place (id, parent, step, source), the nodes that
    run next, pending interrupts, every state channel's value
    (pretty-printed; LangChain messages as "type: content"), pending sends,
    pending writes and the metadata. Values are decoded as the application
    does: encrypted threads need LANGGRAPH_AES_KEY. A DeltaChannel with no
    snapshot at this checkpoint shows as {"delta": {"seed", "writes"}}: the
    value the graph's reducer starts from, and the writes it folds in.

    --json prints {"thread_id", "checkpoint_ns", "checkpoint_id",
    "parent_checkpoint_id", "ts", "metadata", "values": {channel: value},
    "next", "pending_writes": [{"task_id", "channel", "value"}],
    "pending_sends": [{"node", "arg"}], "interrupts"}; with --channel,
    {"channel", "value"}.

    \b
    Examples:
      langgraph-postgres show my-thread
      langgraph-postgres show my-thread 1ef4f797-8335-6428-8001-8a1503f9b875
      langgraph-postgres show my-thread --channel messages --json
    """
    with env.saver() as saver:
        item = load(env, saver, thread_id, namespace, checkpoint_id)
    if channel is not None:
        value = pick_channel(item, channel)
        env.out.emit(
            {"channel": channel, "value": readable(value)},
            lambda: env.out.line(pretty(value)),
        )
        return
    doc = checkpoint_document(item)
    env.out.emit(doc, lambda: _print_document(env, doc))


def _parent_of(item: Any, thread_id: str) -> str:
    parent = (item.parent_config or {}).get("configurable", {}).get("checkpoint_id")
    if not parent:
        raise CliError(
            f"checkpoint {item.config['configurable']['checkpoint_id']} has no "
            "parent to compare with",
            f"name two checkpoints: `{PROG} diff {thread_id} A B`",
        )
    return str(parent)


@click.command("diff")
@click.argument("thread_id", metavar="THREAD")
@click.argument("first", metavar="[A]", required=False)
@click.argument("second", metavar="[B]", required=False)
@click.option(
    "--ns",
    "namespace",
    default=None,
    metavar="NS",
    help="Checkpoint namespace (default: the root graph's, \"\", or A's own).",
)
@common_options
@pass_env
def diff_command(
    env: Env,
    thread_id: str,
    first: str | None,
    second: str | None,
    namespace: str | None,
) -> None:
    """What changed in a thread's state between checkpoints A and B.

    With A and B: from A to B. With A only: from A's parent to A. With
    neither: from the latest checkpoint's parent to the latest. Lists the
    state channels added, removed and changed, with a unified diff of each
    changed value (pretty-printed as `show` prints it).

    --json prints {"thread_id", "from", "to", "added": {channel: value},
    "removed": {channel: value}, "changed": {channel: {"before", "after"}}}.

    \b
    Examples:
      langgraph-postgres diff my-thread
      langgraph-postgres diff my-thread 1ef4f797-8335-6428-8001-8a1503f9b875
      langgraph-postgres diff my-thread A_ID B_ID --json
    """
    with env.saver() as saver:
        if second is None:
            after = load(env, saver, thread_id, namespace, first)
            ns = after.config["configurable"]["checkpoint_ns"]
            before = load(env, saver, thread_id, ns, _parent_of(after, thread_id))
        else:
            before = load(env, saver, thread_id, namespace, first)
            after = load(env, saver, thread_id, namespace, second)
    a = before.config["configurable"]["checkpoint_id"]
    b = after.config["configurable"]["checkpoint_id"]
    changes = diff_states(
        state_values(before.checkpoint), state_values(after.checkpoint)
    )
    data = {"thread_id": thread_id, "from": a, "to": b, **readable(changes)}

    def human() -> None:
        env.out.line(f"{thread_id}: {a} -> {b}", style="bold")
        if not any(changes.values()):
            env.out.line("no state channel changed", style="dim")
        for name, value in changes["added"].items():
            env.out.line(f"+ {name} (added): {pretty(value)}", style="green")
        for name, value in changes["removed"].items():
            env.out.line(f"- {name} (removed): {pretty(value)}", style="red")
        for name, change in changes["changed"].items():
            env.out.line(f"~ {name} (changed)", style="yellow")
            for line in value_diff(name, change["before"], change["after"], a=a, b=b):
                env.out.line(f"  {line}")

    env.out.emit(data, human)


COMMANDS: list[click.Command] = [show_command, diff_command]
