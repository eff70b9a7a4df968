"""Every ``langgraph-postgres`` example in README.md and docs/ runs, and
prints what the page shows.

A ```console block holds commands (``$ langgraph-postgres ...``) each followed
by its output. The commands of a page run in order, in a directory of their
own (for ``> file`` and ``< file``), against a database filled the way the
page says: README's quick start shows the demo's database (bench/demo.py),
docs/cli.md the graph of tests/cli_support.py, with a fresh copy at each
``## `` section so that one section's prune does not change the next one's
output.

Output is compared line by line after blanking what differs between runs:
ids, timestamps, sizes in bytes, table rules and column padding. A line
``...`` in the page stands for any number of lines. A block after the
comment ``<!-- output varies -->`` (server versions, timings) is only checked
to succeed, or to fail when the page shows an ``error:`` line.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli_support import fill, fill_store, run_cli
from tests.conftest import Databases
from tests.test_demo import load_demo

ROOT = Path(__file__).resolve().parent.parent
VARIES = "<!-- output varies -->"
PROG = "langgraph-postgres"
#: What the command line prints for a failure it did not foresee (a bug).
UNEXPECTED = "LANGGRAPH_POSTGRES_DEBUG=1 for the traceback"


@dataclass
class Example:
    """One ``$`` command of a page and the output shown under it."""

    line: int
    command: str
    output: list[str]
    varies: bool


@dataclass
class Section:
    """The examples that share one database (a page, or one of its ``##``)."""

    title: str
    examples: list[Example] = field(default_factory=list)


def _fill_graph(uri: str) -> None:
    fill(uri)
    fill_store(uri)


def _fill_demo(uri: str) -> None:
    with contextlib.redirect_stdout(open(os.devnull, "w")):  # noqa: SIM115
        load_demo().run(uri)


#: Pages with console examples, how to fill their database, and whether each
#: ``##`` section starts from a fresh copy.
PAGES: dict[str, tuple[Callable[[str], None], bool]] = {
    "README.md": (_fill_demo, False),
    "docs/cli.md": (_fill_graph, True),
}


def parse(text: str, *, per_section: bool) -> list[Section]:
    """The sections of a page and their console examples.

    >>> page = "## a\\n```console\\n$ langgraph-postgres x\\nout\\n```\\n"
    >>> [(s.title, [(e.command, e.output) for e in s.examples]) for s in
    ...     parse(page, per_section=True)]
    [('a', [('langgraph-postgres x', ['out'])])]
    """
    sections = [Section("(top)")]
    in_block = varies = False
    previous = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if not in_block:
            if per_section and line.startswith("## "):
                sections.append(Section(line[3:].strip()))
            elif line.strip() == "```console":
                in_block, varies = True, previous.strip() == VARIES
            if line.strip():
                previous = line
            continue
        if line.strip() == "```":
            in_block = False
        elif line.startswith("$ "):
            sections[-1].examples.append(Example(number, line[2:], [], varies))
        elif sections[-1].examples:
            sections[-1].examples[-1].output.append(line)
    return [s for s in sections if s.examples]


_BLANKS = [
    (
        re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
        "<id>",
    ),
    (
        re.compile(
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?"
        ),
        "<ts>",
    ),
    (re.compile(r"\d{4}-\d{2}-\d{2}"), "<date>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<id>"),  # interrupt ids
    (re.compile(r"\d+(\.\d+)? ?(B|kB|KB|MB|GB|TB|bytes)\b"), "<size>"),
    (re.compile(r"\d+(\.\d+)? ?(ms|s)\b"), "<time>"),
    # Byte counts in JSON ("size_bytes", "bytes"): stored sizes vary with ids.
    (re.compile(r'("\w*bytes\w*": )\d+'), r"\1<n>"),
]
_RULE = re.compile(r"^[\s\-─━═│┃┏┓┗┛┡┩└┘┌┐├┤┬┴┼╇╈╋+|]*$")


def normalize(line: str) -> str:
    """``line`` with run-dependent parts blanked and padding collapsed.

    >>> normalize("chat-1   12   2026-12-06 18:04:11  4.5 kB")
    'chat-1 12 <ts> <size>'
    """
    for pattern, blank in _BLANKS:
        line = pattern.sub(blank, line)
    line = re.sub(r"[│┃]", " ", line)
    return " ".join(line.split())


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` lines fit ``expected``, where ``...`` is any lines.

    >>> matches(["a", "...", "z"], ["a", "b", "c", "z"])
    True
    >>> matches(["a", "z"], ["a", "b", "z"])
    False
    """
    want = [normalize(x) for x in expected if not _RULE.match(x)]
    got = [normalize(x) for x in actual if not _RULE.match(x)]
    if not want:
        return not got
    if want[0] == "...":
        rest = want[1:]
        return any(matches(rest, got[i:]) for i in range(len(got) + 1))
    return bool(got) and got[0] == want[0] and matches(want[1:], got[1:])


def run_example(
    example: Example, uri: str, workdir: Path, other: Callable[[str], str]
) -> tuple[int, list[str]]:
    """Run one ``$`` line as a shell would (env assignments, ``<`` and ``>``).

    A line that sets ``POSTGRES_URI`` itself (``POSTGRES_URI=.../staging``)
    runs against ``other(that uri)``: another database of the test's own.
    """
    words = shlex.split(example.command, comments=True)
    env: dict[str, str | None] = {"POSTGRES_URI": uri}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = other(value) if name == "POSTGRES_URI" else value
    if example.varies and (not words or words[0] != PROG):
        return 0, []  # a shell step (a pipe, head) the page only shows
    assert words and words[0] == PROG, f"line {example.line}: not a {PROG} command"
    args, stdin, stdout_file, head = [], None, None, None
    tokens = iter(words[1:])
    for word in tokens:
        if word == "|":
            pipe = [next(tokens, ""), next(tokens, "")]
            if pipe[0] == "head" and pipe[1][1:].isdigit():  # `| head -N`
                head = int(pipe[1][1:])
                continue
            if example.varies:
                return 0, []
            raise AssertionError(f"line {example.line}: only `| head -N` here")
        if word == "<":
            source = workdir / next(tokens)
            if example.varies and not source.exists():
                return 0, []  # a file the page only describes
            stdin = source.read_text()
        elif word == ">":
            stdout_file = workdir / next(tokens)
        else:
            assert word not in {"&&", ";"}, f"line {example.line}: one command a line"
            args.append(word)
    # Files the command names itself (--output, --input) land in workdir too.
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        result = run_cli(*args, env=env, stdin=stdin)
    finally:
        os.chdir(cwd)
    if stdout_file is not None:
        stdout_file.write_text(result.out)
        return result.code, result.err.splitlines()
    return result.code, (result.out + result.err).splitlines()[:head]


def _cases() -> Iterator[object]:
    for page, (_, per_section) in PAGES.items():
        path = ROOT / page
        if not path.exists():
            continue
        for section in parse(path.read_text(), per_section=per_section):
            yield pytest.param(page, section, id=f"{page}:{section.title}")


def test_the_pages_have_console_examples() -> None:
    assert len(list(_cases())) >= 2


@pytest.mark.parametrize(("page", "section"), list(_cases()))
def test_console_examples_print_what_the_page_shows(
    page: str, section: Section, databases: Databases, tmp_path: Path
) -> None:
    uri = databases.create()
    PAGES[page][0](uri)
    others: dict[str, str] = {}

    def other(named: str) -> str:
        if named not in others:
            others[named] = databases.create()
        return others[named]

    for example in section.examples:
        code, lines = run_example(example, uri, tmp_path, other)
        where = f"{page}:{example.line}: $ {example.command}"
        if example.varies:
            # Shown on another database or server: it must still run cleanly.
            assert not any(UNEXPECTED in line for line in lines), where
            continue
        shows_error = any(line.startswith("error:") for line in example.output)
        assert (code != 0) == shows_error, f"{where}\nexit {code}\n" + "\n".join(lines)
        assert matches(example.output, lines), f"{where}\n" + "\n".join(
            difflib.unified_diff(
                [normalize(x) for x in example.output],
                [normalize(x) for x in lines],
                "page shows",
                "printed",
                lineterm="",
            )
        )


def test_the_helpers_examples_hold() -> None:
    import doctest
    import sys

    assert doctest.testmod(sys.modules[__name__]).failed == 0
