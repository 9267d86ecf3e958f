import json

import pytest

from zdmkit.migrate.state import RunState, StateError, atomic_write_json


def test_finished_ranges_survive_a_restart(tmp_path):
    path = tmp_path / "state.json"
    state = RunState(path, "copy", 16)
    state.mark_started("ks.t", "1:2")
    state.mark_started("ks.t", "2:3")
    state.mark_done("ks.t", "1:2", {"rows": 5})
    again = RunState(path, "copy", 16)
    assert again.completed("ks.t") == {"1:2": {"rows": 5}}
    assert again.was_started("ks.t", "2:3")
    assert not again.was_started("ks.t", "1:2")
    assert again.completed("ks.other") == {}


def test_state_refuses_other_splits_or_kind(tmp_path):
    path = tmp_path / "state.json"
    RunState(path, "copy", 16).mark_done("ks.t", "1:2")
    with pytest.raises(StateError, match="--splits 16"):
        RunState(path, "copy", 32)
    with pytest.raises(StateError, match="belongs to a copy run"):
        RunState(path, "validate", 16)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(StateError, match="cannot be read"):
        RunState(path, "copy", 16)


def test_without_a_path_nothing_is_written(tmp_path):
    state = RunState(None, "copy", 4)
    state.mark_done("ks.t", "1:2")
    assert state.completed("ks.t") == {"1:2": {}}
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "sub" / "report.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]
