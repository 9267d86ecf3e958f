import io
from types import SimpleNamespace as NS

from cassandra.query import BatchStatement

from zdmkit.migrate.driverio import Batcher, RateLimiter, ReplicaSets, estimated_size
from zdmkit.migrate.progress import Progress


class Recorder:
    def __init__(self):
        self.sent = []

    def submit(self, statement, values=None):
        self.sent.append(statement if isinstance(statement, BatchStatement) else (statement, values))


def test_batcher_groups_by_key_and_size():
    rec = Recorder()
    batcher = Batcher(rec, max_statements=3)
    stmt = "INSERT INTO ks.t (k) VALUES (%s)"
    for key, n in [("a", 1), ("a", 2), ("b", 3), ("b", 4), ("b", 5), ("b", 6)]:
        batcher.add(key, stmt, (n,))
    assert batcher.requests == 2  # "a" (2 rows) then "b" (3 rows) went out; one "b" row is pending
    assert batcher.statements == 5
    batcher.flush()
    assert [len(s._statements_and_parameters) if isinstance(s, BatchStatement) else 1 for s in rec.sent] == [2, 3, 1]


def test_batcher_sends_single_statements_unbatched_and_respects_bytes():
    rec = Recorder()
    batcher = Batcher(rec, max_statements=10, max_bytes=100)
    stmt = object()
    batcher.add("k", stmt, ("x" * 90,))
    batcher.add("k", stmt, ("y" * 90,))  # would exceed 100 bytes: the first goes alone
    batcher.flush()
    assert rec.sent == [(stmt, ("x" * 90,)), (stmt, ("y" * 90,))]
    assert batcher.requests == 2


def test_estimated_size():
    assert estimated_size(("abc", b"12", 5, [1, 2])) == 7 + 6 + 12 + 48 + 4 * 30


def test_replica_sets_follow_ring_ownership():
    tokens = [NS(value=v) for v in (-100, 0, 100)]
    replicas = {-100: ["h1", "h2"], 0: ["h2", "h3"], 100: ["h1", "h2"]}
    token_map = NS(ring=tokens, get_replicas=lambda ks, t: [NS(endpoint=h) for h in replicas[t.value]])
    sets = ReplicaSets(NS(metadata=NS(token_map=token_map)), "ks")
    # a token belongs to the first ring token >= it, wrapping around past the last one
    assert sets.owner(-500) == sets.owner(-100) == sets.owner(50 + 50) == sets.owner(10**6)
    assert sets.owner(-99) == sets.owner(0) != sets.owner(-100)


def test_rate_limiter_without_rate_never_waits():
    RateLimiter(None).acquire(10**9)


def test_progress_log_lines_and_eta():
    out = io.StringIO()
    progress = Progress("copy", 4, mode="bar", stream=out, done_ranges=1)
    progress.advance(rows=100, ranges=1)
    progress.finish()
    text = out.getvalue()
    assert "2/4 ranges" in text and "100 rows" in text and "ETA" in text
