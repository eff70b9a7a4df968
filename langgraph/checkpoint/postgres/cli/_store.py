"""``store namespaces | get | search``: browse the long-term memory store.

A namespace is written with dots, ``users.alice``, as the store keeps it in
its ``prefix`` column: a namespace label cannot contain a dot, so the
spelling is never ambiguous (a slash may be part of a label).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
import orjson

from langgraph.checkpoint.postgres.cli._app import Env, common_options, pass_env
from langgraph.checkpoint.postgres.cli._errors import CliError

#: How many namespaces / items are shown unless --limit says otherwise.
DEFAULT_NAMESPACES = 100
DEFAULT_ITEMS = 10


def parse_namespace(text: str) -> tuple[str, ...]:
    """A namespace from its dotted spelling; ``""`` is the whole store.

    >>> parse_namespace("users.alice"), parse_namespace("")
    (('users', 'alice'), ())
    >>> parse_namespace("users..alice")
    Traceback (most recent call last):
    ...
    langgraph.checkpoint.postgres.cli._errors.CliError: empty label in namespace 'users..alice'; write a namespace with dots between its labels, e.g. users.alice
    """  # noqa: E501
    if not text:
        return ()
    labels = tuple(text.split("."))
    if not all(labels):
        raise CliError(
            f"empty label in namespace {text!r}",
            "write a namespace with dots between its labels, e.g. users.alice",
        )
    return labels


def format_namespace(namespace: Sequence[str]) -> str:
    """A namespace as the command line spells it.

    >>> format_namespace(("users", "alice"))
    'users.alice'
    """
    return ".".join(namespace)


def parse_filter(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` options as the store's filter: a value that reads as
    JSON (``3``, ``true``, ``"3"``, ``{"a": 1}``) is that JSON, any other
    value a string.

    >>> parse_filter(["lang=en", "age=3", 'id="7"'])
    {'lang': 'en', 'age': 3, 'id': '7'}
    """
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"bad --filter {pair!r}", "write it as key=value")
        try:
            result[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            result[key] = value
    return result


def item_data(item: Any) -> dict[str, Any]:
    """An item (or search hit) as the ``--json`` output gives it."""
    data = {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }
    if getattr(item, "score", None) is not None:
        data["score"] = item.score
    return data


def _slash_hint(text: str) -> str:
    if "/" in text and "." not in text:
        return f"namespaces are written with dots ({text.replace('/', '.')})"
    return "see `langgraph-postgres store namespaces`"


def _print_item(env: Env, item: Any) -> None:
    env.out.fields(
        [
            ("namespace", format_namespace(item.namespace)),
            ("key", item.key),
            ("created", item.created_at.isoformat()),
            ("updated", item.updated_at.isoformat()),
        ]
    )
    env.out.line(orjson.dumps(item.value, option=orjson.OPT_INDENT_2).decode())


@click.group("store")
@common_options
def store_group() -> None:
    """Browse the long-term memory store (PostgresStore): its namespaces and
    items. Reads only.

    A namespace is written with dots between its labels: users.alice.

    \b
    Examples:
      langgraph-postgres store namespaces
      langgraph-postgres store get users.alice profile
      langgraph-postgres store search users --filter lang=en
    """


@store_group.command("namespaces")
@click.option("--prefix", default="", metavar="NAMESPACE", help="Only under this.")
@click.option(
    "--max-depth",
    type=click.IntRange(min=1),
    help="Cut namespaces to this many labels (and list each once).",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=DEFAULT_NAMESPACES, show_default=True
)
@click.option("--offset", type=click.IntRange(min=0), default=0)
@common_options
@pass_env
def namespaces_command(
    env: Env, prefix: str, max_depth: int | None, limit: int, offset: int
) -> None:
    """List the store's namespaces, sorted.

    --json prints {"namespaces": [["users", "alice"], ...]}.

    \b
    Examples:
      langgraph-postgres store namespaces
      langgraph-postgres store namespaces --prefix users --max-depth 2
    """
    wanted = parse_namespace(prefix)
    with env.store() as store:
        found = store.list_namespaces(
            prefix=wanted or None, max_depth=max_depth, limit=limit, offset=offset
        )
    rows = [{"namespace": format_namespace(ns)} for ns in found]
    env.out.emit(
        {"namespaces": [list(ns) for ns in found]},
        lambda: env.out.table(rows, ["namespace"], empty="(no namespaces)"),
    )


@store_group.command("get")
@click.argument("namespace")
@click.argument("key")
@common_options
@pass_env
def get_command(env: Env, namespace: str, key: str) -> None:
    """Show one item: its times and its value (as JSON).

    --json prints the item: {"namespace": [...], "key", "value",
    "created_at", "updated_at"}.

    \b
    Examples:
      langgraph-postgres store get users.alice profile
    """
    with env.store() as store:
        item = store.get(parse_namespace(namespace), key)
    if item is None:
        raise CliError(
            f"no item {key!r} in namespace {namespace!r}", _slash_hint(namespace)
        )
    env.out.emit(item_data(item), lambda: _print_item(env, item))


@store_group.command("search")
@click.argument("namespace_prefix", default="", required=False)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="Items whose value has KEY equal to VALUE (JSON, else a string).",
)
@click.option(
    "--query",
    metavar="TEXT",
    help="Semantic search: not available here (needs the app's embeddings).",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=DEFAULT_ITEMS, show_default=True
)
@click.option("--offset", type=click.IntRange(min=0), default=0)
@common_options
@pass_env
def search_command(
    env: Env,
    namespace_prefix: str,
    filters: tuple[str, ...],
    query: str | None,
    limit: int,
    offset: int,
) -> None:
    """Find items under a namespace prefix (default: the whole store),
    optionally matching --filter on their values; newest update first.

    Semantic search (--query) embeds the text with the application's model,
    which the command line does not have: it is refused; search from Python
    with PostgresStore(index=...) instead.

    --json prints {"items": [item, ...]}, each as `store get --json` shows it.

    \b
    Examples:
      langgraph-postgres store search users
      langgraph-postgres store search users --filter lang=fr --json
    """
    if query is not None:
        raise CliError(
            "semantic search (--query) needs the application's embedding model",
            "use --filter here, or PostgresStore(index=...).search(..., query=...) "
            "in Python",
        )
    wanted = parse_namespace(namespace_prefix)
    match = parse_filter(filters)
    with env.store() as store:
        items = store.search(wanted, filter=match or None, limit=limit, offset=offset)

    def human() -> None:
        if not items:
            env.out.line("(no items)", style="dim")
        for number, item in enumerate(items):
            if number:
                env.out.line()
            _print_item(env, item)

    env.out.emit({"items": [item_data(i) for i in items]}, human)


COMMANDS: list[click.Command] = [store_group]
