"""Reading checkpoints for people, without I/O: times, filters, next nodes,
readable values and diffs.

``threads``, ``history``, ``show`` and ``diff`` fetch rows and decoded
checkpoints; everything they then derive is here, as small functions that
tests and doctests call directly.
"""

from __future__ import annotations

import difflib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from langgraph.checkpoint.postgres.cli._durations import duration_seconds
from langgraph.checkpoint.postgres.cli._errors import CliError
from langgraph.checkpoint.postgres.cli._output import jsonable

#: 100 ns intervals between the UUID epoch (1582-10-15) and the Unix epoch.
UUID_EPOCH_OFFSET = 0x01B21DD213814000
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: LangGraph's channels for edges (``branch:to:<node>``), graph input,
#: ``Send`` packets and interrupts; they are bookkeeping, not state.
BRANCH_PREFIX = "branch:to:"
START = "__start__"
TASKS = "__pregel_tasks"
INTERRUPT = "__interrupt__"
RESUME = "__resume__"
ERROR = "__error__"


# -- times and ids -------------------------------------------------------------


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: an age before ``now`` (``30m``, ``12h``, ``7d``, ``2w``) or
    an ISO date/time (UTC unless it says otherwise).

    >>> now = datetime(2026, 1, 10, tzinfo=timezone.utc)
    >>> parse_since("7d", now).isoformat()
    '2026-01-03T00:00:00+00:00'
    >>> parse_since("2026-01-09T12:00", now).isoformat()
    '2026-01-09T12:00:00+00:00'
    """
    age = duration_seconds(text, bare=None)
    if age is not None:
        return now - timedelta(seconds=age)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"--since {text!r} is neither an age nor an ISO date/time",
            "write e.g. 7d, 12h, 30m or 2026-01-31T08:00",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def uuid6_floor(moment: datetime) -> str:
    """The smallest uuid6 checkpoint id made at or after ``moment``.

    LangGraph's checkpoint ids are uuid6, whose text sorts by time, so
    ``checkpoint_id >= uuid6_floor(t)`` keeps checkpoints made since ``t``.

    >>> uuid6_floor(datetime(2026, 12, 6, 18, 10, tzinfo=timezone.utc))
    '1f1f1a04-03d0-6c00-0000-000000000000'
    """
    delta = moment - UNIX_EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    ticks = max(micros * 10 + UUID_EPOCH_OFFSET, 0)
    digits = f"{ticks:015x}"[-15:]
    return f"{digits[:8]}-{digits[8:12]}-6{digits[12:]}-0000-000000000000"


def uuid6_time(checkpoint_id: str) -> datetime | None:
    """When a uuid6 checkpoint id was made (``None`` for other ids).

    >>> uuid6_time("1f1f1a04-03d0-6c00-0000-000000000000").isoformat()
    '2026-12-06T18:10:00+00:00'
    >>> uuid6_time("not-a-uuid") is None
    True
    """
    try:
        value = uuid.UUID(checkpoint_id)
    except ValueError:
        return None
    # The version nibble, read directly: ``UUID.version`` is None unless the
    # variant bits are RFC 4122's too.
    if (value.int >> 76) & 0xF != 6:
        return None
    ticks = (value.int >> 80) << 12 | (value.int >> 64) & 0x0FFF
    return UNIX_EPOCH + timedelta(microseconds=(ticks - UUID_EPOCH_OFFSET) // 10)


def parse_metadata_filters(pairs: Iterable[str]) -> dict[str, Any]:
    """``--metadata`` options as one containment filter (``metadata @> it``).

    ``key=value`` matches a string; ``key:=json`` a JSON value (number,
    boolean, null, object).

    >>> parse_metadata_filters(["user=alice", "step:=3"])
    {'user': 'alice', 'step': 3}
    """
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(
                f"--metadata {pair!r} is not key=value",
                "write e.g. --metadata user=alice (or step:=3 for a number)",
            )
        if key.endswith(":"):
            try:
                result[key[:-1]] = json.loads(value)
            except ValueError:
                raise CliError(
                    f"--metadata {pair!r}: {value!r} is not JSON",
                    "use key=value for a string",
                ) from None
        else:
            result[key] = value
    return result


# -- what a checkpoint says -------------------------------------------------------


def _newer(version: Any, seen: Any) -> bool:
    if seen is None:
        return True
    if type(version) is not type(seen):
        return str(version) > str(seen)
    return bool(version > seen)


def next_nodes(checkpoint: Mapping[str, Any]) -> list[str]:
    """The nodes a (decoded) checkpoint runs next, as ``StateSnapshot.next``
    would name them, without the graph.

    A node runs when its ``branch:to:<node>`` channel holds a value at a
    version it has not seen (graph input triggers ``__start__`` alike), and
    once per ``Send`` waiting in ``__pregel_tasks``.

    >>> next_nodes({
    ...     "channel_values": {"branch:to:review": None, "__pregel_tasks": [],
    ...                        "messages": []},
    ...     "channel_versions": {"branch:to:review": 4, "branch:to:chat": 3},
    ...     "versions_seen": {"review": {"branch:to:review": 3}},
    ... })
    ['review']
    """
    values = checkpoint.get("channel_values") or {}
    versions = checkpoint.get("channel_versions") or {}
    seen = checkpoint.get("versions_seen") or {}
    nodes: list[str] = []
    for channel in values:
        if channel.startswith(BRANCH_PREFIX):
            node = channel[len(BRANCH_PREFIX) :]
        elif channel == START:
            node = START
        else:
            continue
        if _newer(versions.get(channel), (seen.get(node) or {}).get(channel)):
            nodes.append(node)
    nodes.extend(send_node(send) for send in pending_sends(checkpoint))
    return sorted(nodes)


def pending_sends(checkpoint: Mapping[str, Any]) -> list[Any]:
    """The ``Send`` packets waiting in a decoded checkpoint."""
    sends = (checkpoint.get("channel_values") or {}).get(TASKS)
    return list(sends) if isinstance(sends, (list, tuple)) else []


def send_node(send: Any) -> str:
    return str(getattr(send, "node", send))


def interrupt_values(pending_writes: Sequence[Any]) -> list[Any]:
    """The values of the interrupts among a checkpoint's pending writes
    (``(task_id, channel, value)``), in order.

    >>> interrupt_values([("t", "__interrupt__", ["approve?"]), ("t", "x", 1)])
    ['approve?']
    """
    found: list[Any] = []
    for _task, channel, value in pending_writes:
        if channel != INTERRUPT:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            found.append(getattr(item, "value", item))
    return found


def is_state_channel(name: str) -> bool:
    """Whether a channel is graph state rather than LangGraph's bookkeeping.

    >>> [is_state_channel(c) for c in ("messages", "branch:to:x", "__start__")]
    [True, False, False]
    """
    return (
        not (
            name.startswith(BRANCH_PREFIX)
            or (name.startswith("__") and name.endswith("__"))
        )
        and name != TASKS
    )


def state_values(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The graph state of a decoded checkpoint: its state channels' values,
    delta snapshots unwrapped, sorted by name."""
    values = checkpoint.get("channel_values") or {}
    return {
        name: unwrap(values[name]) for name in sorted(values) if is_state_channel(name)
    }


def unwrap(value: Any) -> Any:
    """A ``DeltaChannel`` snapshot's value, other values as they are."""
    if type(value).__name__ == "_DeltaSnapshot":
        return value.value
    return value


# -- readable values ---------------------------------------------------------


def readable(value: Any) -> Any:
    """``value`` as plain data for people: LangChain messages become one
    ``"<type>: <content>"`` string (with their tool calls), anything else as
    :func:`jsonable` makes it.

    >>> readable({"n": (1, 2), "s": {"a"}})
    {'n': [1, 2], 's': ['a']}
    """
    if _is_message(value):
        text = f"{value.type}: {_content(value.content)}"
        calls = getattr(value, "tool_calls", None)
        if calls:
            text += " " + json.dumps(
                [{"name": c.get("name"), "args": c.get("args")} for c in calls],
                ensure_ascii=False,
                default=str,
            )
        return text
    if isinstance(value, Mapping):
        return {str(k): readable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [readable(v) for v in value]
    return jsonable(value)


def _is_message(value: Any) -> bool:
    return hasattr(value, "content") and isinstance(getattr(value, "type", None), str)


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    return json.dumps(jsonable(content), ensure_ascii=False)


def pretty(value: Any, width: int = 80, *, expand: bool = False) -> str:
    """``value`` pretty-printed: a string as itself, anything else as JSON of
    :func:`readable`, a container on one line when it fits in ``width``,
    else one item per line (always, with ``expand``: diffs then show the
    items that changed).

    >>> print(pretty({"a": [1, "x"], "b": ["y" * 40, "z" * 40]}))
    {
      "a": [1, "x"],
      "b": [
        "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
        "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
      ]
    }
    """
    data = readable(value)
    if isinstance(data, str):
        return data
    return _layout(data, 0, width, expand)


def _one_line(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


def _layout(data: Any, indent: int, width: int, expand: bool = False) -> str:
    flat = _one_line(data)
    if not isinstance(data, (dict, list)) or not data:
        return flat
    if indent + len(flat) <= width and not expand:
        return flat
    pad = " " * (indent + 2)
    if isinstance(data, dict):
        items = [
            f"{pad}{_one_line(str(k))}: {_layout(v, indent + 2, width)}"
            for k, v in data.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + _layout(v, indent + 2, width) for v in data]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


# -- diffs ---------------------------------------------------------------------


def diff_states(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Channels added, removed and changed from ``before`` to ``after``
    (compared as readable data).

    >>> diff_states({"a": 1, "b": [1]}, {"b": [1, 2], "c": "x"})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'added': {'c': 'x'}, 'removed': {'a': 1},
     'changed': {'b': {'before': [1], 'after': [1, 2]}}}
    """
    added = {k: after[k] for k in after if k not in before}
    removed = {k: before[k] for k in before if k not in after}
    changed = {
        k: {"before": before[k], "after": after[k]}
        for k in before
        if k in after and readable(before[k]) != readable(after[k])
    }
    return {"added": added, "removed": removed, "changed": changed}


def value_diff(name: str, before: Any, after: Any, *, a: str, b: str) -> list[str]:
    """A unified diff of one channel's pretty-printed values.

    >>> value_diff("m", ["x"], ["x", "y"], a="A", b="B")[2:]
    ['@@ -1,3 +1,4 @@', ' [', '   "x"', '+  "y"', ' ]']
    """
    lines = difflib.unified_diff(
        _diff_lines(before),
        _diff_lines(after),
        fromfile=f"{name} @ {a}",
        tofile=f"{name} @ {b}",
        lineterm="",
    )
    return [line.rstrip() for line in lines]


def _diff_lines(value: Any) -> list[str]:
    # Without JSON's separating commas, appending an item changes one line.
    return [line.removesuffix(",") for line in pretty(value, expand=True).splitlines()]
