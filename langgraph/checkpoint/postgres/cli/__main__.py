"""``python -m langgraph.checkpoint.postgres.cli``: ``langgraph-postgres``."""

from langgraph.checkpoint.postgres.cli import console_main

# Guarded: the doctest run imports every module of the package.
if __name__ == "__main__":
    console_main()
