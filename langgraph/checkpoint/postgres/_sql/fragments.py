"""SQL pieces that several statements share."""

from __future__ import annotations


def populated(checkpoint: str, channel: str, thread: str | None = None) -> str:
    """SQL: whether ``channel`` has a stored value at checkpoint row ``checkpoint``.

    ``thread`` names the row's thread for the blob lookup: by default its
    column; a statement about one thread passes its parameter, so that Citus
    finds every table it reads restricted to that thread's shard.

    A value is stored inline in the checkpoint JSON (or marked there, for a
    delta snapshot) or as a non-empty blob at the channel's version: exactly
    the channels :meth:`BasePostgresSaver._load_tuple` puts in
    ``channel_values``.
    """
    # A scalar subquery (not EXISTS, which the planner may turn into a join
    # hashing every blob of the thread) keeps this one primary-key lookup.
    return f"""(
        ({checkpoint}.checkpoint -> 'channel_values') ? {channel}
        OR (
            SELECT pb.type <> 'empty' FROM $checkpoint_blobs pb
            WHERE pb.thread_id = {thread or checkpoint + ".thread_id"}
                AND pb.checkpoint_ns = {checkpoint}.checkpoint_ns
                AND pb.channel = {channel}
                AND pb.version
                    = {checkpoint}.checkpoint -> 'channel_versions' ->> {channel}
            LIMIT 1
        ) IS TRUE
    )"""
