"""Settings of the demo application: modes, credentials per mode, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zdmkit.demo_app.config import (
    CONFIG_ENV,
    MODE_ENV,
    ConfigError,
    Mode,
    build_settings,
    load_settings,
    parse_mode,
)

FULL = {
    "mode": "CASSANDRA",
    "keyspace": "zdmapp",
    "consistency_level": "local_quorum",
    "listen_address": "10.0.0.5",
    "listen_port": 8000,
    "origin": {"contact_points": ["10.0.0.2", "10.0.0.3"], "username": "cassandra", "password": "o-secret"},
    "target": {
        "contact_points": "10.0.1.2, 10.0.1.3",
        "port": 9043,
        "username": "tuser",
        "password": "t-secret",
    },
    "proxy": {"contact_points": ["10.0.2.2"], "port": 9042},
    "astra": {"secure_connect_bundle": "/etc/zdmkit/scb.zip", "client_id": "cid", "client_secret": "csecret"},
}


def settings_for(mode: str, data: dict | None = None):
    return build_settings({**(data or FULL), "mode": mode}, {}, "demo-app.yml")


def test_cassandra_mode_uses_origin_contact_points_and_credentials():
    s = settings_for("CASSANDRA")
    assert s.mode is Mode.CASSANDRA
    assert s.endpoint.contact_points == ("10.0.0.2", "10.0.0.3")
    assert (s.endpoint.username, s.endpoint.password, s.endpoint.port) == ("cassandra", "o-secret", 9042)
    assert s.consistency_level == "LOCAL_QUORUM"
    assert s.cloud is None


def test_origin_is_an_alias_of_cassandra():
    assert settings_for("origin").mode is Mode.CASSANDRA


def test_proxy_mode_takes_proxy_addresses_and_target_credentials():
    s = settings_for("ZDM_PROXY")
    assert s.endpoint.contact_points == ("10.0.2.2",)
    assert (s.endpoint.username, s.endpoint.password) == ("tuser", "t-secret")


def test_target_mode_accepts_a_comma_separated_string():
    s = settings_for("TARGET")
    assert s.endpoint.contact_points == ("10.0.1.2", "10.0.1.3")
    assert s.endpoint.port == 9043


def test_astra_mode_uses_the_bundle():
    s = settings_for("ASTRA_DB")
    assert s.endpoint is None
    assert s.cloud.secure_connect_bundle == "/etc/zdmkit/scb.zip"
    assert (s.cloud.client_id, s.cloud.client_secret) == ("cid", "csecret")


def test_environment_overrides_the_file_mode():
    s = build_settings(FULL, {MODE_ENV: "zdm_proxy"}, "demo-app.yml")
    assert s.mode is Mode.ZDM_PROXY


def test_secrets_stay_out_of_repr_and_description():
    s = settings_for("CASSANDRA")
    assert "o-secret" not in repr(s)
    assert "o-secret" not in s.describe()
    assert "csecret" not in repr(settings_for("ASTRA_DB"))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"mode": "NOPE"}, "unknown connection mode 'NOPE'"),
        ({"mode": None}, "'mode' is not set"),
        ({"origin": {}}, "'origin.contact_points' is required for mode CASSANDRA"),
        ({"origin": {"contact_points": ["a"], "username": "u"}}, "'origin.password' is required"),
        ({"origin": {"contact_point": ["a"]}}, "unknown setting 'origin.contact_point'"),
        ({"listen_port": 70000}, "'listen_port' is 70000"),
        ({"listen_port": "8000"}, "'listen_port' must be an integer"),
        ({"consistency_level": "SOME"}, "'consistency_level' 'SOME' is not one of"),
        ({"keyspace": "bad-name"}, "'keyspace' 'bad-name' is not a valid CQL identifier"),
        ({"colour": "blue"}, "unknown setting 'colour'"),
        ({"request_timeout_seconds": 0}, "'request_timeout_seconds' is 0"),
    ],
)
def test_bad_settings_give_one_clear_line(change, expected):
    with pytest.raises(ConfigError) as err:
        build_settings({**FULL, **change}, {}, "demo-app.yml")
    message = str(err.value)
    assert expected in message
    assert message.startswith("demo-app.yml: ")
    assert "\n" not in message


def test_proxy_mode_needs_proxy_addresses():
    data = {k: v for k, v in FULL.items() if k != "proxy"}
    with pytest.raises(ConfigError, match=r"'proxy\.contact_points' is required for mode ZDM_PROXY"):
        settings_for("ZDM_PROXY", data)


def test_astra_mode_needs_every_bundle_setting():
    data = {**FULL, "astra": {"secure_connect_bundle": "/x.zip", "client_id": "cid"}}
    with pytest.raises(ConfigError, match=r"'astra\.client_secret' is required for mode ASTRA_DB"):
        settings_for("ASTRA_DB", data)


def test_unknown_mode_from_the_environment_names_the_variable():
    with pytest.raises(ConfigError, match=f"^{MODE_ENV} in the environment: unknown connection mode 'ASTRA'"):
        build_settings(FULL, {MODE_ENV: "ASTRA"}, "demo-app.yml")


def test_parse_mode_lists_the_choices():
    with pytest.raises(ConfigError, match="CASSANDRA, ZDM_PROXY, TARGET, ASTRA_DB, ORIGIN"):
        parse_mode("x", "here")


def test_load_yaml_and_json_files(tmp_path: Path):
    yml = tmp_path / "app.yml"
    yml.write_text("mode: TARGET\ntarget:\n  contact_points: [127.0.0.1]\n", encoding="utf-8")
    assert load_settings({CONFIG_ENV: str(yml)}).mode is Mode.TARGET
    js = tmp_path / "app.json"
    js.write_text(json.dumps({"mode": "CASSANDRA", "origin": {"contact_points": ["h1"]}}), encoding="utf-8")
    assert load_settings({CONFIG_ENV: str(js)}).endpoint.contact_points == ("h1",)


def test_missing_and_broken_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings({CONFIG_ENV: str(tmp_path / "absent.yml")})
    broken = tmp_path / "broken.yml"
    broken.write_text("mode: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings({CONFIG_ENV: str(broken)})
    listed = tmp_path / "list.yml"
    listed.write_text("- a\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_settings({CONFIG_ENV: str(listed)})


def test_uvicorn_style_start_refuses_an_unknown_mode_with_one_line(tmp_path: Path):
    cfg = tmp_path / "app.yml"
    cfg.write_text("mode: CASSANDRA\norigin:\n  contact_points: [127.0.0.1]\n", encoding="utf-8")
    env = {CONFIG_ENV: str(cfg), MODE_ENV: "ASTRA", "PATH": "/usr/bin:/bin"}
    code = "import zdmkit.demo_app.api as api; api.app"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "unknown connection mode 'ASTRA'" in lines[0]


def test_console_entry_point_refuses_a_missing_setting_with_one_line(tmp_path: Path):
    cfg = tmp_path / "app.yml"
    cfg.write_text("mode: ZDM_PROXY\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "zdmkit.demo_app", "--config", str(cfg)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "'proxy.contact_points' is required for mode ZDM_PROXY" in result.stderr
