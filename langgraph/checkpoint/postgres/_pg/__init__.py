"""The Postgres layer under the saver (and, next, the store): no saver knowledge.

Borrowing a connection from a connection, pool or pipeline; retrying a call
whose pooled connection died; bounding calls by a timeout; the migration
runner; schema-qualified SQL. The sync and async twins of each module run
what an I/O-free core prepared and hand the rows back.
"""
