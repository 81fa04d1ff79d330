"""A database connection for reads that stream millions of rows in constant memory.

Exports read a build with a server-side cursor (PostgreSQL) or SQLite's lazily stepped cursor, while
progress is written through Django's own connection and committed as it goes, so the page can show
it. The two cannot share a connection: a PostgreSQL named cursor lives inside a transaction (outside
one, Django declares it WITH HOLD and the server copies the whole result before the first row), and
progress written inside that transaction would stay invisible until the end.

So the reader is a second connection with the same settings. When the caller already holds a
transaction (a test, or an atomic block around the call) a second connection could not see the
caller's uncommitted rows, so the caller's own connection is used and progress shows at its commit.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper


@contextmanager
def read_connection(alias: str = DEFAULT_DB_ALIAS) -> Iterator[BaseDatabaseWrapper]:
    own = connections[alias]
    if own.in_atomic_block:
        yield own
        return
    reader = own.__class__(own.settings_dict, own.alias)
    try:
        if reader.vendor == "postgresql":
            reader.set_autocommit(False)
            with reader.cursor() as cursor:
                # JIT pays off for analytics, not for streaming index lookups: compiling the export query's
                # expressions cost a third of its throughput in measurements.
                cursor.execute("SET LOCAL jit = off")
        yield reader
    finally:
        try:
            if reader.connection is not None and not reader.get_autocommit():
                reader.rollback()
        finally:
            reader.close()


def server_side_cursor(reader: BaseDatabaseWrapper):
    """A cursor that fetches rows as they are asked for (a named cursor on PostgreSQL)."""
    return reader.chunked_cursor()


def id_list_condition(reader: BaseDatabaseWrapper, column: str, ids: list[int]) -> tuple[str, list]:
    """`column IN (...)` as SQL and parameters: one array parameter on PostgreSQL, a list elsewhere."""
    if reader.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(ids)]
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", list(ids)
