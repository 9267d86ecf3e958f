"""Token ring splitting.

A range is ``(start, end]``: the scan query is ``token(pk) > start AND token(pk) <= end``.
The ring's minimum token is never the token of a key (Murmur3 maps ``Long.MIN_VALUE`` to
``Long.MAX_VALUE``; RandomPartitioner tokens start at 0), so ranges starting at the minimum
cover the whole ring.
"""

from __future__ import annotations

from dataclasses import dataclass

MURMUR3 = "org.apache.cassandra.dht.Murmur3Partitioner"
RANDOM = "org.apache.cassandra.dht.RandomPartitioner"

# (minimum, maximum) of each supported partitioner's ring.
RINGS: dict[str, tuple[int, int]] = {
    MURMUR3: (-(2**63), 2**63 - 1),
    RANDOM: (-1, 2**127),
}


class UnsupportedPartitioner(ValueError):
    pass


@dataclass(frozen=True, order=True)
class TokenRange:
    start: int  # exclusive
    end: int  # inclusive

    @property
    def id(self) -> str:
        return f"{self.start}:{self.end}"

    @classmethod
    def from_id(cls, text: str) -> TokenRange:
        start, _, end = text.partition(":")
        return cls(int(start), int(end))

    def contains(self, token: int) -> bool:
        return self.start < token <= self.end


def ring_bounds(partitioner: str) -> tuple[int, int]:
    try:
        return RINGS[partitioner]
    except KeyError:
        raise UnsupportedPartitioner(
            f"partitioner {partitioner} is not supported (only Murmur3Partitioner and RandomPartitioner "
            "have a numeric token ring that can be split)"
        ) from None


def split_ring(splits: int, partitioner: str = MURMUR3) -> list[TokenRange]:
    """Split the whole ring into ``splits`` contiguous ranges of (nearly) equal width."""
    if splits < 1:
        raise ValueError("splits must be >= 1")
    low, high = ring_bounds(partitioner)
    width = high - low
    if splits > width:
        raise ValueError(f"cannot split a ring of {width} tokens into {splits} ranges")
    bounds = [low + (width * i) // splits for i in range(splits)] + [high]
    return [TokenRange(bounds[i], bounds[i + 1]) for i in range(splits)]
