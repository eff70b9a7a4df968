"""``python -m langgraph.checkpoint.postgres.cli``: ``langgraph-postgres``."""

from langgraph.checkpoint.postgres.cli import console_main

console_main()
