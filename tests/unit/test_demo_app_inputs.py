"""Pure parts of the status API: entries, limits, path bytes, timestamps, metrics."""

from __future__ import annotations

import datetime as dt

import pytest

from zdmkit.demo_app.inputs import (
    BadInput,
    MillisClock,
    check_segment,
    format_when,
    now_millis,
    parse_entries,
    raw_segments,
    status_entry,
)
from zdmkit.demo_app.metrics import AppMetrics, Counter, Histogram, Registry


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, 1),
        ("3", 3),
        (" 2 ", 2),
        ("0", 1),
        ("-5", 1),
        ("abc", 1),
        ("2.5", 1),
        ("", 1),
        ("1e3", 1),
        ("100", 100),
        ("101", 100),
        ("99999999999999999999999", 100),
    ],
)
def test_parse_entries_follows_the_lab_and_caps(raw, expected):
    assert parse_entries(raw, cap=100) == expected


def test_check_segment_counts_utf8_bytes():
    check_segment("status", "é" * 2048, 4096)
    with pytest.raises(BadInput) as err:
        check_segment("status", "é" * 2049, 4096)
    assert err.value.status_code == 422
    assert "4098 bytes" in err.value.detail


def test_check_segment_refuses_empty():
    with pytest.raises(BadInput, match="user must not be empty"):
        check_segment("user", "", 10)


def test_raw_segments_decode_each_segment_on_its_own():
    assert raw_segments(b"/status/eva") == ["eva"]
    assert raw_segments(b"/status/eva/%E2%9C%93?entries=3") == ["eva", "✓"]
    assert raw_segments(b"/status/a%2Fb/c%3Fd") == ["a/b", "c?d"]
    assert raw_segments(b"/status/eva/") == ["eva", ""]
    assert raw_segments(b"/status/") == [""]


def test_raw_segments_refuse_bad_utf8_and_other_paths():
    with pytest.raises(BadInput) as err:
        raw_segments(b"/status/eva/%FF%FE")
    assert err.value.status_code == 400
    with pytest.raises(BadInput) as err:
        raw_segments(b"/other/eva")
    assert err.value.status_code == 404


def test_format_when_is_iso_with_milliseconds():
    assert format_when(dt.datetime(2022, 10, 10, 14, 0, 0)) == "2022-10-10T14:00:00.000"
    assert format_when(dt.datetime(2022, 10, 10, 14, 0, 0, 123456)) == "2022-10-10T14:00:00.123"
    aware = dt.datetime(2022, 10, 10, 16, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert format_when(aware) == "2022-10-10T14:00:00.000"


def test_now_millis_is_naive_utc_truncated_to_milliseconds():
    value = now_millis()
    assert value.tzinfo is None
    assert value.microsecond % 1000 == 0
    assert abs((dt.datetime.now(dt.UTC).replace(tzinfo=None) - value).total_seconds()) < 5


def test_status_entry_shape():
    entry = status_entry("eva", dt.datetime(2022, 10, 10, 12, 0), "Online")
    assert entry == {"user": "eva", "when": "2022-10-10T12:00:00.000", "status": "Online"}
    assert list(entry) == ["user", "when", "status"]


def test_histogram_is_cumulative_and_counts():
    registry = Registry()
    hist = registry.register(Histogram("h_seconds", "help", ("route",), buckets=(0.1, 1.0)))
    for value in (0.05, 0.5, 0.5, 5.0):
        hist.observe(value, "/x")
    text = registry.render()
    assert "# TYPE h_seconds histogram" in text
    assert 'h_seconds_bucket{route="/x",le="0.1"} 1' in text
    assert 'h_seconds_bucket{route="/x",le="1"} 3' in text
    assert 'h_seconds_bucket{route="/x",le="+Inf"} 4' in text
    assert 'h_seconds_count{route="/x"} 4' in text
    assert 'h_seconds_sum{route="/x"} 6.05' in text
    assert hist.count("/x") == 4


def test_counter_escapes_label_values():
    registry = Registry()
    counter = registry.register(Counter("c_total", "help", ("path",)))
    counter.inc('a"b\\c\nd')
    assert 'c_total{path="a\\"b\\\\c\\nd"} 1' in registry.render()


def test_counter_checks_label_count():
    with pytest.raises(ValueError, match="takes labels"):
        Counter("c_total", "help", ("a",)).inc()


def test_app_metrics_names():
    text = AppMetrics().render()
    for name in (
        "zdmkit_demo_app_requests_total",
        "zdmkit_demo_app_request_errors_total",
        "zdmkit_demo_app_request_duration_seconds",
        "zdmkit_demo_app_db_retries_total",
    ):
        assert f"# TYPE {name} " in text


def test_millis_clock_never_repeats_a_timestamp():
    frozen = dt.datetime(2024, 5, 1, 10, 0, 0, 5000)
    clock = MillisClock(lambda: frozen)
    stamps = [clock() for _ in range(3)]
    assert stamps == [frozen + dt.timedelta(milliseconds=i) for i in range(3)]
    assert len({format_when(s) for s in stamps}) == 3
