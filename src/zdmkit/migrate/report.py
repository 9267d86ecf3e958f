"""Counters, sample keys, the JSON report and the human summary.

Validation counters follow Cassandra Data Migrator's vocabulary:

``read``      Origin rows read
``valid``     rows equal on Target (every compared column)
``mismatch``  rows present on both sides with at least one differing column
``missing``   Origin rows absent on Target
``skipped``   rows that changed on Origin while being checked (a re-read no longer matched the
              scan; dual writes keep both sides moving) and were left to the next run
``error``     rows that could not be checked (read failures); a failed correction leaves its row
              counted as missing/mismatch and lists it under ``not_corrected`` in the samples
``extra``     Target rows absent on Origin (reported, never deleted)
``corrected_missing`` / ``corrected_mismatch``  differences repaired by ``--autocorrect``
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from zdmkit.migrate.state import atomic_write_json

SAMPLE_LIMIT = 20


@dataclass
class ValidationCounts:
    read: int = 0
    valid: int = 0
    mismatch: int = 0
    missing: int = 0
    skipped: int = 0
    error: int = 0
    extra: int = 0
    corrected_missing: int = 0
    corrected_mismatch: int = 0

    def add(self, other: ValidationCounts | dict[str, int]) -> None:
        data = other if isinstance(other, dict) else asdict(other)
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + int(data.get(f.name, 0)))

    @property
    def unresolved(self) -> int:
        """Differences still present on Target after this run (corrections subtracted)."""
        return self.mismatch - self.corrected_mismatch + self.missing - self.corrected_missing + self.error

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Samples:
    """A bounded list of example keys per kind of difference."""

    limit: int = SAMPLE_LIMIT
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, kind: str, entry: dict[str, Any]) -> None:
        bucket = self.items.setdefault(kind, [])
        if len(bucket) < self.limit:
            bucket.append(entry)

    def merge(self, other: dict[str, list[dict[str, Any]]]) -> None:
        for kind, entries in other.items():
            for entry in entries:
                self.add(kind, entry)


def printable(value: Any) -> Any:
    """A JSON-friendly rendering of a CQL value for sample keys."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple | set | frozenset):
        return [printable(v) for v in value]
    if hasattr(value, "items"):
        return {str(printable(k)): printable(v) for k, v in value.items()}
    return str(value)


def key_dict(names: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
    return {n: printable(v) for n, v in zip(names, values, strict=False)}


def write_report(path: str | Path, report: dict[str, Any]) -> None:
    atomic_write_json(Path(path), report)


def validation_summary(report: dict[str, Any]) -> str:
    """Human summary of a validation report: one line per table, totals, then sample keys."""
    lines = []
    header = f"{'table':<40} {'read':>10} {'valid':>10} {'mismatch':>9} {'missing':>8} {'skipped':>8} {'error':>6}"
    lines.append(header)
    for name, entry in sorted(report["tables"].items()):
        c = entry["counts"]
        lines.append(
            f"{name:<40} {c['read']:>10} {c['valid']:>10} {c['mismatch']:>9} {c['missing']:>8} "
            f"{c['skipped']:>8} {c['error']:>6}"
        )
    t = report["totals"]
    lines.append(
        f"{'TOTAL':<40} {t['read']:>10} {t['valid']:>10} {t['mismatch']:>9} {t['missing']:>8} "
        f"{t['skipped']:>8} {t['error']:>6}"
    )
    if t.get("corrected_missing") or t.get("corrected_mismatch"):
        lines.append(f"corrected: {t['corrected_missing']} missing, {t['corrected_mismatch']} mismatch")
    if t.get("extra"):
        lines.append(f"extra rows on Target (not on Origin, never deleted): {t['extra']}")
    for name, entry in sorted(report["tables"].items()):
        for kind, samples in sorted(entry.get("samples", {}).items()):
            for sample in samples:
                detail = ""
                if sample.get("columns"):
                    detail = " columns " + ", ".join(sample["columns"])
                lines.append(f"{kind} {name} key {json.dumps(sample['key'], sort_keys=True)}{detail}")
    if report.get("failed_ranges"):
        lines.append(f"ranges not checked (errors): {len(report['failed_ranges'])}")
    rate = report.get("rows_per_second")
    lines.append(
        f"{'OK' if report['ok'] else 'DIFFERENCES FOUND'}: {t['read']} rows in {report['duration_seconds']:.1f} s"
        + (f" ({rate:,.0f} rows/s)" if rate else "")
    )
    return "\n".join(lines)


def copy_summary(report: dict[str, Any]) -> str:
    lines = [f"{'table':<40} {'rows':>10} {'writes':>10} {'ranges':>13} {'resumed':>8}"]
    for name, entry in sorted(report["tables"].items()):
        lines.append(
            f"{name:<40} {entry['rows']:>10} {entry['writes']:>10} "
            f"{entry['ranges_done']:>6}/{entry['ranges_total']:<6} {entry['ranges_resumed']:>8}"
        )
    for failure in report.get("failed_ranges", [])[:SAMPLE_LIMIT]:
        lines.append(f"failed range {failure['table']} {failure['range']}: {failure['error']}")
    rate = report.get("rows_per_second")
    status = "OK" if report["ok"] else "INCOMPLETE (re-run with the same --state-file to resume)"
    lines.append(
        f"{status}: {report['totals']['rows']} rows copied in {report['duration_seconds']:.1f} s"
        + (f" ({rate:,.0f} rows/s)" if rate else "")
    )
    return "\n".join(lines)
