"""Settings of the demo application: modes, credentials per mode, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from zdmkit.demo_app.config import (
    CONFIG_ENV,
    MODE_ENV,
    ConfigError,
    Mode,
    TlsSettings,
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


# --- client-to-node TLS -----------------------------------------------------------------------


def write_pem_files(directory: Path) -> dict[str, Path]:
    """A throwaway CA, a client certificate it signed with the certificate's key, another key
    and a file that is no PEM at all."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    now = dt.datetime.now(dt.UTC)
    ca_key, client_key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zdmkit test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    client = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "demo-app")]))
        .issuer_name(ca_name)
        .public_key(client_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    files = {
        "ca": ca.public_bytes(serialization.Encoding.PEM),
        "cert": client.public_bytes(serialization.Encoding.PEM),
        "key": key_pem(client_key),
        "other_key": key_pem(other_key),
        "junk": b"not a certificate\n",
    }
    paths = {}
    for name, content in files.items():
        paths[name] = directory / f"{name}.pem"
        paths[name].write_bytes(content)
    paths["absent"] = directory / "absent.pem"
    paths["dir"] = directory
    return paths


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_pem_files(tmp_path_factory.mktemp("pem"))


def with_tls(section: str, tls: object, mode: str = "CASSANDRA") -> dict:
    data = {**FULL, "mode": mode}
    data[section] = {**FULL[section], "tls": tls}
    return data


def test_tls_with_a_ca_and_a_client_certificate(pem):
    tls = {"ca_file": str(pem["ca"]), "cert_file": str(pem["cert"]), "key_file": str(pem["key"])}
    s = build_settings(with_tls("origin", {**tls, "verify_hostname": True}), {}, "demo-app.yml")
    assert s.endpoint.tls == TlsSettings(str(pem["ca"]), str(pem["cert"]), str(pem["key"]), verify_hostname=True)
    assert "cluster=10.0.0.2,10.0.0.3:9042 over mutual TLS keyspace=" in s.describe()


def test_tls_with_a_ca_only_verifies_without_a_client_certificate(pem):
    s = build_settings(with_tls("target", {"ca_file": str(pem["ca"])}, "TARGET"), {}, "demo-app.yml")
    assert s.endpoint.tls == TlsSettings(ca_file=str(pem["ca"]))
    assert s.endpoint.tls.verify_hostname is False
    assert " over TLS " in s.describe()


def test_tls_with_a_certificate_and_no_ca_verifies_nothing(pem):
    tls = {"cert_file": str(pem["cert"]), "key_file": str(pem["key"])}
    s = build_settings(with_tls("proxy", tls, "ZDM_PROXY"), {}, "demo-app.yml")
    assert s.endpoint.tls == TlsSettings(cert_file=str(pem["cert"]), key_file=str(pem["key"]))
    assert "over mutual TLS (certificates not verified)" in s.describe()


@pytest.mark.parametrize(
    "tls", [None, {}, {"ca_file": "", "cert_file": ""}, {"ca_file": None, "verify_hostname": False}]
)
def test_no_ca_and_no_certificate_is_plain_cql(tls):
    s = build_settings(with_tls("origin", tls), {}, "demo-app.yml")
    assert s.endpoint.tls is None
    assert "TLS" not in s.describe()


def test_proxy_mode_takes_the_proxy_tls_not_the_target_tls(pem):
    data = with_tls("proxy", {"ca_file": str(pem["ca"])}, "ZDM_PROXY")
    data["target"] = {**FULL["target"], "tls": {"ca_file": str(pem["absent"])}}
    s = build_settings(data, {}, "demo-app.yml")
    assert s.endpoint.tls == TlsSettings(ca_file=str(pem["ca"]))
    assert (s.endpoint.username, s.endpoint.password) == ("tuser", "t-secret")


def test_astra_mode_ignores_tls(pem):
    s = build_settings(with_tls("origin", {"ca_file": str(pem["ca"])}, "ASTRA_DB"), {}, "demo-app.yml")
    assert s.endpoint is None
    assert "TLS" not in s.describe()


def test_tls_of_a_section_the_mode_does_not_use_is_still_checked_for_typos(pem):
    with pytest.raises(ConfigError, match=r"unknown setting 'target\.tls\.ca'"):
        build_settings(with_tls("target", {"ca": str(pem["ca"])}), {}, "demo-app.yml")


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        ({"ca": "{ca}"}, "unknown setting 'origin.tls.ca' (known: ca_file, cert_file, key_file, verify_hostname)"),
        ("{ca}", "'origin.tls' must be a mapping"),
        ({"ca_file": 5}, "'origin.tls.ca_file' must be a string"),
        ({"key_file": "{key}"}, "'origin.tls.cert_file' is required when 'origin.tls.key_file' is set"),
        ({"ca_file": "{ca}", "cert_file": "{cert}"}, "'origin.tls.key_file' is required when 'origin.tls.cert_file'"),
        ({"ca_file": "{ca}", "verify_hostname": "yes"}, "'origin.tls.verify_hostname' must be true or false"),
        ({"cert_file": "{cert}", "key_file": "{key}", "verify_hostname": True}, "'origin.tls.verify_hostname' needs"),
        ({"ca_file": "{absent}"}, "'origin.tls.ca_file' is {absent}, which does not exist"),
        ({"ca_file": "{dir}"}, "'origin.tls.ca_file' is {dir}, which is not a file"),
        ({"ca_file": "{ca}", "cert_file": "{cert}", "key_file": "{absent}"}, "'origin.tls.key_file' is {absent}"),
        ({"ca_file": "{junk}"}, "'origin.tls.ca_file' {junk} holds no usable PEM CA certificate"),
        (
            {"cert_file": "{cert}", "key_file": "{other_key}"},
            "'origin.tls.cert_file' {cert} and 'origin.tls.key_file' {other_key} are not a PEM certificate",
        ),
    ],
)
def test_bad_tls_settings_name_the_key(pem, tls, expected):
    def fill(value: object) -> object:
        if isinstance(value, str):
            return value.format(**{name: str(path) for name, path in pem.items()})
        return value

    tls = {k: fill(v) for k, v in tls.items()} if isinstance(tls, dict) else fill(tls)
    with pytest.raises(ConfigError) as err:
        build_settings(with_tls("origin", tls), {}, "demo-app.yml")
    message = str(err.value)
    assert fill(expected) in message
    assert message.startswith("demo-app.yml: ")
    assert "\n" not in message


def test_an_unreadable_tls_file_is_named(pem, monkeypatch: pytest.MonkeyPatch):
    real_open = Path.open

    def refuse(self: Path, *args, **kwargs):
        if self == pem["ca"]:
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(ConfigError, match=r"'origin\.tls\.ca_file' is .*, which cannot be read: Permission denied"):
        build_settings(with_tls("origin", {"ca_file": str(pem["ca"])}), {}, "demo-app.yml")


def test_check_config_loads_the_tls_files(pem, tmp_path: Path):
    cfg = tmp_path / "app.yml"
    tls = {"ca_file": str(pem["ca"]), "cert_file": str(pem["cert"]), "key_file": str(pem["key"])}
    cfg.write_text(json.dumps({"mode": "TARGET", "target": {"contact_points": ["t1"], "tls": tls}}), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "zdmkit.demo_app", "--check-config", "--config", str(cfg)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "cluster=t1:9042 over mutual TLS" in result.stdout


ROOT = Path(__file__).parents[2]
ROLE = ROOT / "roles/demo_app"


def render_config(directory: Path, cases: dict[str, dict]) -> dict[str, Path]:
    """Render the role's configuration template once per case (name -> variables), through
    Ansible, with the role's defaults and vars."""
    beside = Path(sys.executable).with_name("ansible-playbook")
    rendered = {name: directory / f"{name}.yml" for name in cases}
    common = {
        "demo_app_listen_address": "127.0.0.1",
        "demo_app_origin_contact_points": ["o1"],
        "demo_app_target_contact_points": ["t1"],
        "demo_app_proxy_contact_points": ["p1"],
    }
    playbook = directory / "render.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Render the demo application's configuration",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "vars_files": [str(ROLE / "defaults/main.yml"), str(ROLE / "vars/main.yml")],
                    "tasks": [
                        {
                            "name": f"Render {name}",
                            "ansible.builtin.template": {
                                "src": str(ROLE / "templates/etc/zdmkit/demo-app.yml.j2"),
                                "dest": str(rendered[name]),
                                "mode": "0600",
                            },
                            "vars": {**common, **variables},
                        }
                        for name, variables in cases.items()
                    ],
                }
            ],
            sort_keys=False,
        )
    )
    result = subprocess.run(
        [
            str(beside) if beside.exists() else "ansible-playbook",
            "-i",
            "localhost,",
            "-e",
            "ansible_python_interpreter={{ ansible_playbook_python }}",
            str(playbook),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return rendered


def test_role_template_writes_tls_only_for_the_endpoints_given_a_ca_or_certificate(pem, tmp_path: Path):
    controller = {name: str(path) for name, path in pem.items()}
    files = render_config(
        tmp_path,
        {
            "plain": {},
            "tls": {
                "demo_app_origin_tls_ca_file": controller["ca"],
                "demo_app_origin_tls_cert_file": controller["cert"],
                "demo_app_origin_tls_key_file": controller["key"],
                "demo_app_proxy_tls_cert_file": controller["cert"],
                "demo_app_proxy_tls_key_file": controller["key"],
                "demo_app_tls_verify_hostname": True,
            },
        },
    )
    plain = yaml.safe_load(files["plain"].read_text())
    assert not any("tls" in plain[section] for section in ("origin", "target", "proxy"))
    text = files["tls"].read_text()
    config = yaml.safe_load(text)
    assert config["origin"]["tls"] == {
        "ca_file": "/etc/zdmkit/tls/origin-ca.pem",
        "cert_file": "/etc/zdmkit/tls/origin-cert.pem",
        "key_file": "/etc/zdmkit/tls/origin-key.pem",
        "verify_hostname": True,
    }
    # Without a CA there is nothing to check the host names with.
    assert config["proxy"]["tls"] == {
        "cert_file": "/etc/zdmkit/tls/proxy-cert.pem",
        "key_file": "/etc/zdmkit/tls/proxy-key.pem",
        "verify_hostname": False,
    }
    assert "tls" not in config["target"]

    # The application accepts the rendered file once the host paths hold the files.
    host = tmp_path / "host"
    host.mkdir()
    for section, kind, source in (("origin", "ca", "ca"), ("origin", "cert", "cert"), ("origin", "key", "key")):
        (host / f"{section}-{kind}.pem").write_bytes(pem[source].read_bytes())
    for kind in ("cert", "key"):
        (host / f"proxy-{kind}.pem").write_bytes(pem[kind].read_bytes())
    moved = tmp_path / "moved.yml"
    moved.write_text(text.replace("/etc/zdmkit/tls/", f"{host}/"), encoding="utf-8")
    assert load_settings({}, moved).describe().startswith("mode=CASSANDRA cluster=o1:9042 over mutual TLS ")
    assert "over mutual TLS (certificates not verified)" in load_settings({MODE_ENV: "ZDM_PROXY"}, moved).describe()
