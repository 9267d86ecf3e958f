"""Phase 2 of a zero-downtime migration: copy the existing data from Origin to Target with every
cell's writetime and TTL, validate row by row, repair differences.

Command line: ``python -m zdmkit.migrate preflight|copy|validate`` (see :mod:`zdmkit.migrate.cli`).

How it works

* ``schema``: tables of the given keyspaces are read from Origin's schema metadata; Target must
  have the same keyspaces (or ``--keyspace-map``), tables, columns, types and UDTs. Anything
  else is refused before a row moves, one precise line per problem (exit code 2).
* ``ranges``: the token ring is split into ``--splits`` ranges; a range is the unit of work,
  of resuming (``state``) and of Spark tasks (``spark``).
* ``copy``: a range is scanned on Origin with WRITETIME() and TTL() of every value column; each
  row becomes INSERT/UPDATE ... USING TIMESTAMP ? AND TTL ? statements, one per group of cells
  sharing a writetime and TTL (``statements`` documents every rule). A copied cell never beats
  a newer one written to Target meanwhile. Writes go out asynchronously (bounded by
  ``--concurrency``), in small UNLOGGED batches of rows owned by the same Target replicas.
* ``validate``: both sides of a range are scanned and merged in token order; every
  difference is read again by key before it counts. ``--autocorrect`` writes Origin's cells with
  Origin's writetime, never deletes.
* ``engine``: runs the range tasks in threads (``--engine builtin``, ``--processes`` for more
  cores) or on Spark (``--engine spark``); ``dsbulk`` drives DSBulk as an alternative copier.

CQL types covered

=====================================  ==============================================================
column type                            copy
=====================================  ==============================================================
native types (ascii ... varint),       one cell: grouped with the row's cells of the same writetime
duration, vector, tuple, frozen        and TTL
collections and UDTs
set, map (non-frozen)                  per element: ``c = c + ?`` grouped by writetime and TTL
UDT (non-frozen)                       per field: ``c.f = ?`` grouped by writetime and TTL
list (non-frozen)                      whole list at its newest element's writetime (cells of a list
                                       are addressed by server-made timeuuids; see ``statements``)
static columns                         once per partition (also partitions with statics only)
primary-key-only rows                  key-only INSERT, at the run's start time
counter                                refused: cannot carry a writetime, re-adding would double it
=====================================  ==============================================================

Non-frozen collections and UDTs need Cassandra 5.0 on Origin (their per-element writetimes);
with the dsbulk engine they are refused.
"""
