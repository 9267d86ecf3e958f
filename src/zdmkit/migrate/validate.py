"""Validate one token range of one table: every column of every row, Origin against Target.

Both sides are scanned over the same token range and merged in token order (a merge-scan:
two sequential reads instead of one lookup per row). Rows of one token are matched by primary
key, so the merge needs no Python rendering of Cassandra's clustering order. Every difference
the scan finds is read again on both sides by primary key before it is counted: with dual
writes running, a row updated between the two scans must not be reported.

``--autocorrect`` writes Origin's cells to Target with Origin's writetime and TTL, and never
deletes anything. When Target still differs afterwards, Target holds something newer than
Origin's cells (a write or a delete that reached Target only). During the migration Origin is
the source of truth, so the differing cells are written again with a timestamp just above
Target's (one microsecond above Target's newest differing cell; for a missing row, whose
tombstone time cannot be read, the current time). ``keep_newer`` turns that second step off and
leaves those rows counted as differences.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from zdmkit.migrate.copy import RangeOutcome
from zdmkit.migrate.driverio import (
    RateLimiter,
    RequestWindow,
    WriteTracker,
    describe_error,
    execute_with_retry,
    read_pages,
)
from zdmkit.migrate.ranges import TokenRange
from zdmkit.migrate.report import Samples, ValidationCounts, key_dict
from zdmkit.migrate.schema import TableSpec
from zdmkit.migrate.statements import CopyPlan, ValidatePlan

AUTOCORRECT_KINDS = frozenset({"missing", "mismatch"})
_END = (2**200,)  # sorts after every token


@dataclass(frozen=True)
class ValidateOptions:
    fetch_size: int = 2000
    retries: int = 5
    compare_writetimes: bool = False
    autocorrect: frozenset[str] = frozenset()
    keep_newer: bool = False
    sample_limit: int = 20
    recheck_concurrency: int = 64
    fallback_timestamp: int = field(default_factory=lambda: int(time.time() * 1_000_000))


def normalize(value: Any) -> Any:
    """A hashable, comparable form of a CQL value (NaN equal to NaN, containers as tuples)."""
    if isinstance(value, float):
        return ("NaN",) if value != value else value
    if isinstance(value, str | bytes | int | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return tuple((normalize(k), normalize(v)) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset) or (hasattr(value, "__iter__") and hasattr(value, "__len__")):
        return tuple(normalize(v) for v in value)
    return value


def hashable_key(key: tuple[Any, ...]) -> Any:
    try:
        hash(key)
    except TypeError:
        return normalize(key)
    return key


def differing_columns(plan: ValidatePlan, origin_row: Sequence[Any], target_row: Sequence[Any]) -> list[str]:
    """Names of the compared columns whose values differ (``writetime(c)`` for writetimes)."""
    start = plan.value_start
    out = []
    for i, name in enumerate(plan.compared_names):
        a = origin_row[start + i]
        b = target_row[start + i]
        if a != b and normalize(a) != normalize(b):
            out.append(name)
    return out


@dataclass
class Candidate:
    kind: str  # missing | mismatch | extra
    key: tuple[Any, ...]
    static_only: bool


def merge_scan(plan: ValidatePlan, o_it: Iterator[tuple], t_it: Iterator[tuple]) -> tuple[int, int, list[Candidate]]:
    """Merge two scans of one token range (rows in token order, as Cassandra returns them).

    Returns (origin rows read, rows equal on both sides, candidate differences). Rows with the
    same token are matched by primary key whatever their order, so only tokens are compared.
    """
    kw = plan.key_width
    candidates: list[Candidate] = []
    o = next(o_it, _END)
    t = next(t_it, _END)
    pend_o: dict[Any, tuple] = {}
    pend_t: dict[Any, tuple] = {}
    pend_token: int | None = None
    read = valid = 0

    def compare(orow: tuple, trow: tuple) -> bool:
        return orow == trow or not differing_columns(plan, orow, trow)

    def flush() -> None:
        for row in pend_o.values():
            candidates.append(Candidate("missing", row[1 : 1 + kw], plan.is_static_only(row)))
        for row in pend_t.values():
            candidates.append(Candidate("extra", row[1 : 1 + kw], plan.is_static_only(row)))
        pend_o.clear()
        pend_t.clear()

    while True:
        otok = o[0]
        ttok = t[0]
        if pend_token is not None and (otok if otok < ttok else ttok) > pend_token:
            flush()
            pend_token = None
        if otok == ttok:
            if o is _END:
                break
            read += 1
            if o == t:
                valid += 1
            else:
                ko = o[1 : 1 + kw]
                kt = t[1 : 1 + kw]
                if ko == kt:
                    if compare(o, t):
                        valid += 1
                    else:
                        candidates.append(Candidate("mismatch", ko, plan.is_static_only(o)))
                else:
                    pend_token = otok
                    hko, hkt = hashable_key(ko), hashable_key(kt)
                    match = pend_t.pop(hko, None)
                    if match is not None:
                        if compare(o, match):
                            valid += 1
                        else:
                            candidates.append(Candidate("mismatch", ko, plan.is_static_only(o)))
                    else:
                        pend_o[hko] = o
                    match = pend_o.pop(hkt, None)
                    if match is not None:
                        if compare(match, t):
                            valid += 1
                        else:
                            candidates.append(Candidate("mismatch", kt, plan.is_static_only(t)))
                    else:
                        pend_t[hkt] = t
            o = next(o_it, _END)
            t = next(t_it, _END)
        elif otok < ttok:
            read += 1
            ko = o[1 : 1 + kw]
            match = pend_t.pop(hashable_key(ko), None) if pend_t else None
            if match is None:
                candidates.append(Candidate("missing", ko, plan.is_static_only(o)))
            elif compare(o, match):
                valid += 1
            else:
                candidates.append(Candidate("mismatch", ko, plan.is_static_only(o)))
            o = next(o_it, _END)
        else:
            kt = t[1 : 1 + kw]
            match = pend_o.pop(hashable_key(kt), None) if pend_o else None
            if match is None:
                candidates.append(Candidate("extra", kt, plan.is_static_only(t)))
            elif compare(match, t):
                valid += 1
            else:
                candidates.append(Candidate("mismatch", kt, plan.is_static_only(t)))
            t = next(t_it, _END)
    flush()
    return read, valid, candidates


class TableValidator:
    def __init__(
        self,
        origin: Session,
        target: Session,
        spec: TableSpec,
        options: ValidateOptions,
        *,
        window: RequestWindow,
        limiter: RateLimiter | None = None,
    ):
        self.origin = origin
        self.target = target
        self.spec = spec
        self.options = options
        self.window = window
        self.limiter = limiter or RateLimiter(None)
        self.plan = ValidatePlan(spec, writetimes=options.compare_writetimes)
        tplan = ValidatePlan(spec, writetimes=options.compare_writetimes, side="target")
        self.key_names = [c.name for c in spec.primary_key]
        self.pk_names = [c.name for c in spec.partition_key]
        self.o_range = origin.prepare(self.plan.select_range)
        self.t_range = target.prepare(tplan.select_range)
        self.o_key = origin.prepare(self.plan.select_key)
        self.t_key = target.prepare(tplan.select_key)
        self.o_part = origin.prepare(self.plan.select_partition)
        self.t_part = target.prepare(tplan.select_partition)
        self.copy_plan: CopyPlan | None = None
        if options.autocorrect:
            self.copy_plan = CopyPlan(spec)
            cp = self.copy_plan
            self.o_copy_key = origin.prepare(cp.select_key)
            self.o_copy_part = origin.prepare(cp.select_partition)
            self.t_copy_key = target.prepare(cp.target_select_key)
            self.t_copy_part = target.prepare(cp.target_select_partition)
            self.writes = {name: target.prepare(cql) for name, cql in cp.templates.items()}

    # -- scan ---------------------------------------------------------------------------------

    def _rows(self, session: Session, statement: Any, rng: TokenRange, limit: bool) -> Iterator[tuple]:
        for page in read_pages(
            session,
            statement,
            (rng.start, rng.end),
            fetch_size=self.options.fetch_size,
            retries=self.options.retries,
        ):
            if limit:
                self.limiter.acquire(len(page))
            yield from page

    def validate_range(self, rng: TokenRange) -> RangeOutcome:
        outcome = RangeOutcome(self.spec.key, rng.id)
        started = time.monotonic()
        counts = ValidationCounts()
        samples = Samples(self.options.sample_limit)
        try:
            candidates = self._scan(rng, counts)
            self._resolve(candidates, counts, samples)
        except Exception as exc:
            outcome.error = f"validating: {describe_error(exc)}"
        outcome.rows = counts.read
        outcome.seconds = time.monotonic() - started
        outcome.extra = {"counts": counts.to_dict(), "samples": samples.items}
        return outcome

    def _scan(self, rng: TokenRange, counts: ValidationCounts) -> list[Candidate]:
        o_it = self._rows(self.origin, self.o_range, rng, True)
        t_it = self._rows(self.target, self.t_range, rng, False)
        read, valid, candidates = merge_scan(self.plan, o_it, t_it)
        counts.read += read
        counts.valid += valid
        return candidates

    # -- re-check and autocorrect --------------------------------------------------------------

    def _fetch(self, session: Session, key_stmt: Any, part_stmt: Any, cands: Sequence[Candidate]) -> list[Any]:
        """Read the candidates' rows by primary key, concurrently; None where absent."""
        results: list[Any] = [None] * len(cands)
        groups: dict[bool, list[int]] = {False: [], True: []}
        for i, cand in enumerate(cands):
            groups[cand.static_only].append(i)
        for static_only, idxs in groups.items():
            if not idxs:
                continue
            stmt = part_stmt if static_only else key_stmt
            params = [cands[i].key[: self.plan.pk_width] if static_only else cands[i].key for i in idxs]
            for attempt in range(self.options.retries + 1):
                outcomes = execute_concurrent_with_args(
                    session, stmt, params, concurrency=self.options.recheck_concurrency, raise_on_first_error=False
                )
                failed = [o for o in outcomes if not o.success]
                if not failed or attempt == self.options.retries:
                    break
                time.sleep(0.5 * 2**attempt)
            for i, result in zip(idxs, outcomes, strict=True):
                if not result.success:
                    results[i] = result.result_or_exc if isinstance(result.result_or_exc, Exception) else Exception()
                    continue
                row = result.result_or_exc.one()
                if row is not None and static_only and not self.plan.is_static_only(row):
                    row = "changed"  # the partition has clustering rows now
                results[i] = row
        return results

    def _resolve(self, candidates: list[Candidate], counts: ValidationCounts, samples: Samples) -> None:
        chunk = 500
        for start in range(0, len(candidates), chunk):
            part = candidates[start : start + chunk]
            fresh_o = self._fetch(self.origin, self.o_key, self.o_part, part)
            fresh_t = self._fetch(self.target, self.t_key, self.t_part, part)
            for cand, o, t in zip(part, fresh_o, fresh_t, strict=True):
                self._classify(cand, o, t, counts, samples)

    def _sample(self, samples: Samples, kind: str, cand: Candidate, columns: list[str] | None = None) -> None:
        names = self.pk_names if cand.static_only else self.key_names
        entry: dict[str, Any] = {"key": key_dict(names, cand.key)}
        if columns:
            entry["columns"] = columns
        samples.add(kind, entry)

    def _classify(self, cand: Candidate, o: Any, t: Any, counts: ValidationCounts, samples: Samples) -> None:
        if isinstance(o, Exception) or isinstance(t, Exception):
            if cand.kind != "extra":
                counts.error += 1
                self._sample(samples, "error", cand)
            return
        if o == "changed" or t == "changed":
            if cand.kind != "extra":
                counts.skipped += 1
            return
        if cand.kind == "extra":
            if o is None and t is not None:
                counts.extra += 1
                self._sample(samples, "extra", cand)
            return
        if o is None:  # deleted from Origin since the scan
            counts.skipped += 1
            return
        if t is None:
            kind, columns = "missing", None
        else:
            columns = differing_columns(self.plan, o, t)
            if not columns:
                counts.valid += 1
                return
            kind = "mismatch"
        if kind == "missing":
            counts.missing += 1
        else:
            counts.mismatch += 1
        self._sample(samples, kind, cand, columns)
        if kind in self.options.autocorrect:
            try:
                fixed = self._correct(cand, kind, columns)
            except Exception as exc:  # left uncorrected: still counted as missing/mismatch
                samples.add("not_corrected", {"key": key_dict(self.key_names, cand.key), "detail": describe_error(exc)})
                return
            if fixed:
                if kind == "missing":
                    counts.corrected_missing += 1
                else:
                    counts.corrected_mismatch += 1
            else:
                # Target keeps something newer (--keep-newer-on-target): still a difference
                self._sample(samples, "not_corrected", cand, columns)

    def _origin_copy_row(self, cand: Candidate) -> Any:
        stmt = self.o_copy_part if cand.static_only else self.o_copy_key
        params = cand.key[: self.plan.pk_width] if cand.static_only else cand.key
        return execute_with_retry(self.origin, stmt, params).one()

    def _target_copy_row(self, cand: Candidate) -> Any:
        stmt = self.t_copy_part if cand.static_only else self.t_copy_key
        params = cand.key[: self.plan.pk_width] if cand.static_only else cand.key
        return execute_with_retry(self.target, stmt, params).one()

    def _apply(self, writes: list[tuple[str, tuple[Any, ...]]]) -> None:
        tracker = WriteTracker(self.target, self.window, retries=self.options.retries)
        for name, values in writes:
            tracker.submit(self.writes[name], values)
        tracker.wait()
        if tracker.failed:
            raise RuntimeError("; ".join(tracker.errors))

    def _still_differs(self, cand: Candidate) -> tuple[bool, list[str] | None]:
        o, t = (
            self._fetch(self.origin, self.o_key, self.o_part, [cand])[0],
            self._fetch(self.target, self.t_key, self.t_part, [cand])[0],
        )
        for value in (o, t):
            if isinstance(value, Exception):
                raise value
        if o is None or o == "changed" or t == "changed":
            return False, None  # Origin moved on; nothing left to correct for this scan
        if t is None:
            return True, None
        columns = differing_columns(self.plan, o, t)
        return bool(columns), columns

    def _correct(self, cand: Candidate, kind: str, columns: list[str] | None) -> bool:
        plan = self.copy_plan
        assert plan is not None
        row = self._origin_copy_row(cand)
        if row is None:
            return True  # gone from Origin: nothing to copy
        only = _column_names(columns) if kind == "mismatch" else None
        writes = plan.writes_for_row(
            row, fallback_timestamp=self.options.fallback_timestamp, only=only, marker=kind == "missing"
        )
        self._apply(writes)
        differs, columns = self._still_differs(cand)
        if not differs or self.options.keep_newer:
            return not differs
        # Target holds newer cells or a newer deletion: write just above them
        if columns is None:  # row missing: a deletion whose time cannot be read
            stamp = int(time.time() * 1_000_000)
            only = None
        else:
            only = _column_names(columns)
            target_row = self._target_copy_row(cand)
            stamp = _newest_writetime(plan, target_row, only) + 1 if target_row is not None else 0
            stamp = max(stamp, _newest_writetime(plan, row, only) + 1)
        row = self._origin_copy_row(cand)
        if row is None:
            return True
        writes = plan.writes_for_row(row, fallback_timestamp=stamp, only=only, timestamp=stamp, marker=columns is None)
        self._apply(writes)
        differs, _ = self._still_differs(cand)
        return not differs


def _column_names(columns: list[str] | None) -> set[str]:
    names = set()
    for name in columns or []:
        if name.startswith("writetime(") and name.endswith(")"):
            name = name[len("writetime(") : -1]
        names.add(name)
    return names


def _newest_writetime(plan: CopyPlan, row: Sequence[Any], names: set[str]) -> int:
    newest = 0
    for name in names:
        vi = plan.value_index.get(name)
        if vi is None:
            continue
        stamps = row[vi + 1]
        for stamp in stamps if isinstance(stamps, list | tuple) else [stamps]:
            if stamp is not None:
                newest = max(newest, stamp)
    return newest
