"""The phase table and the transition rules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).parents[2] / "filter_plugins"))
from zdm_phases import zdm_phase, zdm_phase_drift, zdm_phase_transition, zdm_validation_problems

# a validation that compared every row, as role data_migration records it (strings, as Ansible writes them)
PASSED = {"status": "passed", "engine": "builtin", "read": "3000", "missing": "0", "mismatch": "0", "error": "0",
          "skipped": "0", "complete": "True", "tables": "all", "token_coverage_percent": "100"}


@pytest.mark.parametrize(
    ("phase", "primary", "read_mode", "app_mode"),
    [
        (0, None, None, "CASSANDRA"),
        (1, "ORIGIN", "PRIMARY_ONLY", "ZDM_PROXY"),
        (2, "ORIGIN", "PRIMARY_ONLY", "ZDM_PROXY"),
        (3, "ORIGIN", "DUAL_ASYNC_ON_SECONDARY", "ZDM_PROXY"),
        (4, "TARGET", "PRIMARY_ONLY", "ZDM_PROXY"),
        (5, None, None, "TARGET"),
    ],
)
def test_phase_table(phase, primary, read_mode, app_mode):
    settings = zdm_phase(phase)
    assert (settings["primary_cluster"], settings["read_mode"], settings["app_mode"]) == (primary, read_mode, app_mode)


@pytest.mark.parametrize("bad", [6, -1, "one", "1.5", None, "3a"])
def test_unknown_phase_is_refused(bad):
    with pytest.raises(AnsibleFilterError, match="phase number 0-5"):
        zdm_phase(bad)


@pytest.mark.parametrize(("cur", "want"), [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (2, 4)])
def test_forward_one_step_or_skipping_the_optional_phase(cur, want):
    assert zdm_phase_transition(cur, want, validation=PASSED)["kind"] == "forward"


@pytest.mark.parametrize(("cur", "want", "hint"), [(0, 2, "run phase 1"), (1, 3, "run phase 2"),
                                                   (1, 4, "run phase 2 first"), (0, 5, "run phase 1, 2, 4 first")])
def test_skipping_a_required_phase_is_refused(cur, want, hint):
    with pytest.raises(AnsibleFilterError, match=hint):
        zdm_phase_transition(cur, want, validation=PASSED)


def test_rerun_is_allowed():
    assert zdm_phase_transition(3, 3)["kind"] == "rerun"
    assert zdm_phase_transition(5, 5)["kind"] == "rerun"


@pytest.mark.parametrize("validation", [None, {"status": "failed", "missing": 3, "mismatch": 0},
                                        {"status": "passed", "missing": 0, "mismatch": 2}])
def test_phase_4_needs_a_clean_validation(validation):
    with pytest.raises(AnsibleFilterError, match="zdm_force_reason"):
        zdm_phase_transition(3, 4, validation=validation)


def test_phase_4_can_be_forced_with_a_reason():
    result = zdm_phase_transition(3, 4, validation=None, force_reason="validated with CDM offline")
    assert result["forced"] == "validated with CDM offline"
    with pytest.raises(AnsibleFilterError):
        zdm_phase_transition(3, 4, validation=None, force_reason="   ")


@pytest.mark.parametrize(("cur", "want"), [(4, 1), (4, 3), (3, 2), (2, 1)])
def test_rollback_within_phases_1_to_4(cur, want):
    assert zdm_phase_transition(cur, want)["kind"] == "rollback"


@pytest.mark.parametrize("want", [0, 1, 4])
def test_nothing_leaves_phase_5(want):
    with pytest.raises(AnsibleFilterError, match="phase 5"):
        zdm_phase_transition(5, want)


def test_rollback_to_phase_0_is_refused():
    with pytest.raises(AnsibleFilterError, match="teardown"):
        zdm_phase_transition(2, 0)


def _proxy(host, primary=None, read_mode=None, running=True):
    return {"host": host, "running": running, "primary_cluster": primary, "read_mode": read_mode}


def test_no_drift_when_everything_runs_the_recorded_phase():
    observed = {"proxies": [_proxy(f"p{i}", "ORIGIN", "PRIMARY_ONLY") for i in (1, 2, 3)],
                "apps": [{"host": "app", "mode": "ZDM_PROXY"}]}
    assert zdm_phase_drift(observed, 1, 3) == []


def test_an_interrupted_roll_is_no_drift():
    observed = {"proxies": [_proxy("p1", "ORIGIN", "DUAL_ASYNC_ON_SECONDARY"), _proxy("p2", "ORIGIN", "PRIMARY_ONLY")],
                "apps": [{"host": "app", "mode": "ZDM_PROXY"}]}
    assert zdm_phase_drift(observed, 2, 3) == []


def test_a_proxy_changed_by_hand_is_drift():
    observed = {"proxies": [_proxy("p1", "TARGET", "PRIMARY_ONLY")], "apps": [{"host": "app", "mode": "ZDM_PROXY"}]}
    (problem,) = zdm_phase_drift(observed, 1, 2)
    assert problem.startswith("proxy p1 runs primary TARGET, read mode PRIMARY_ONLY; phase 1 or phase 2 has")


def test_phase_0_and_5_expect_no_proxy_running_and_the_app_on_a_cluster():
    assert zdm_phase_drift({"proxies": [_proxy("p1", running=False)], "apps": [{"host": "a", "mode": "ORIGIN"}]},
                           0, 1) == []
    assert zdm_phase_drift({"proxies": [_proxy("p1", running=False)], "apps": [{"host": "a", "mode": "ASTRA_DB"}]},
                           5, 5) == []
    problems = zdm_phase_drift({"proxies": [], "apps": [{"host": "a", "mode": "CASSANDRA"}]}, 4, 5)
    assert problems == ["application a runs in mode CASSANDRA; phase 4 or phase 5 has TARGET or ZDM_PROXY"]


def test_an_app_that_does_not_answer_is_drift():
    (problem,) = zdm_phase_drift({"proxies": [], "apps": [{"host": "a", "mode": ""}]}, 1, 1)
    assert "unknown (not answering)" in problem


def test_hosts_where_nothing_is_installed_yet_are_no_drift():
    observed = {"proxies": [{"host": "p1", "installed": False, "running": False}],
                "apps": [{"host": "a", "installed": False, "mode": ""}]}
    assert zdm_phase_drift(observed, 3, 3) == []


def test_a_validation_that_compared_every_row_lets_phase_4_go_on():
    assert zdm_validation_problems(PASSED) == []
    native = {**PASSED, "complete": True, "missing": 0, "mismatch": 0, "token_coverage_percent": 100}
    assert zdm_validation_problems(native) == []
    assert zdm_phase_transition(2, 4, validation=PASSED)["kind"] == "forward"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"complete": "False"}, "did not compare every token range of every table"),
        ({"complete": None}, "did not compare every token range"),
        ({"tables": ["app.users"]}, r"covered only the tables \['app.users'\]"),
        ({"token_coverage_percent": "10"}, "read 10% of the token ring, not 100%"),
        ({"skipped": "3"}, "3 rows skipped because they changed while being compared"),
        ({"error": "1"}, "1 rows that could not be read"),
        ({"missing": "10", "status": "failed"}, "its status is 'failed'.*10 rows missing on Target"),
        ({"mismatch": "5"}, "5 rows that differ"),
    ],
    ids=["incomplete", "complete-unknown", "some-tables", "sampled", "skipped", "errors", "missing", "mismatch"],
)
def test_phase_4_refuses_a_validation_that_did_not_compare_every_row(change, reason):
    validation = {**PASSED, **change}
    with pytest.raises(AnsibleFilterError, match=reason):
        zdm_phase_transition(2, 4, validation=validation)
    assert zdm_phase_transition(2, 4, validation=validation, force_reason="accepted by the owner")["forced"]


def test_a_record_of_the_old_form_is_not_enough():
    old = {"status": "passed", "read": 3000, "missing": 0, "mismatch": 0}
    problems = zdm_validation_problems(old)
    assert "it did not compare every token range of every table (complete is not true)" in problems
    assert "it does not say which tables it covered" in problems
