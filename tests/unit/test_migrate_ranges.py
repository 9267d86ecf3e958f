import itertools

import pytest

from zdmkit.migrate.ranges import MURMUR3, RANDOM, TokenRange, UnsupportedPartitioner, split_ring


@pytest.mark.parametrize("splits", [1, 2, 3, 7, 256, 1000])
def test_split_covers_the_murmur3_ring_without_gaps(splits):
    ranges = split_ring(splits, MURMUR3)
    assert len(ranges) == splits
    assert ranges[0].start == -(2**63)
    assert ranges[-1].end == 2**63 - 1
    for left, right in itertools.pairwise(ranges):
        assert left.end == right.start
        assert left.start < left.end


def test_split_widths_differ_by_at_most_one_token():
    ranges = split_ring(7)
    widths = {r.end - r.start for r in ranges}
    assert max(widths) - min(widths) <= 1


def test_every_token_falls_in_exactly_one_range():
    ranges = split_ring(5)
    for token in (-(2**63) + 1, -1, 0, 1, 2**62, 2**63 - 1):
        assert sum(r.contains(token) for r in ranges) == 1
    # the ring's minimum is never a key's token and is covered by no range
    assert not any(r.contains(-(2**63)) for r in ranges)


def test_random_partitioner_ring():
    ranges = split_ring(4, RANDOM)
    assert ranges[0].start == -1 and ranges[-1].end == 2**127


def test_range_id_round_trip():
    rng = TokenRange(-5, 10)
    assert TokenRange.from_id(rng.id) == rng


def test_unsupported_partitioner_and_bad_split_count():
    with pytest.raises(UnsupportedPartitioner, match="ByteOrdered"):
        split_ring(4, "org.apache.cassandra.dht.ByteOrderedPartitioner")
    with pytest.raises(ValueError):
        split_ring(0)
