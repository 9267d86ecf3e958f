"""Settings of the demo application: one file, one environment override.

The file (YAML, or JSON when its name ends in ``.json``) is read from the path in
``ZDMKIT_APP_CONFIG`` (default ``/etc/zdmkit/demo-app.yml``). ``CLIENT_CONNECTION_MODE``
in the environment overrides the file's ``mode``, so the public lab's
``CLIENT_CONNECTION_MODE=ZDM_PROXY uvicorn ...`` habit keeps working.

Every problem is reported as a :class:`ConfigError` whose message is a single line
that names the file and the setting to change.

The ``origin``, ``target`` and ``proxy`` sections may each carry a ``tls`` mapping
(``ca_file``, ``cert_file``, ``key_file``, ``verify_hostname``) for clusters with
client-to-node encryption; its PEM files are checked when the settings are loaded.
"""

from __future__ import annotations

import enum
import json
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_ENV = "ZDMKIT_APP_CONFIG"
MODE_ENV = "CLIENT_CONNECTION_MODE"
DEFAULT_CONFIG_PATH = "/etc/zdmkit/demo-app.yml"

# Consistency levels that make sense for this application's reads and writes.
CONSISTENCY_LEVELS = (
    "ONE",
    "TWO",
    "THREE",
    "QUORUM",
    "ALL",
    "LOCAL_QUORUM",
    "EACH_QUORUM",
    "LOCAL_ONE",
)

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line meant for the operator."""


class Mode(enum.StrEnum):
    """Where the application sends its CQL traffic."""

    CASSANDRA = "CASSANDRA"
    ZDM_PROXY = "ZDM_PROXY"
    TARGET = "TARGET"
    ASTRA_DB = "ASTRA_DB"


# ORIGIN is accepted as another name for CASSANDRA: the Origin cluster, directly.
MODE_ALIASES = {"ORIGIN": Mode.CASSANDRA}
MODE_NAMES = tuple(m.value for m in Mode) + tuple(MODE_ALIASES)


@dataclass(frozen=True)
class TlsSettings:
    """Client-to-node TLS: the CA the nodes' certificates must chain to, and the client
    certificate with its key for clusters that ask for one (mutual TLS)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify_hostname: bool = False

    def describe(self) -> str:
        kind = "mutual TLS" if self.cert_file else "TLS"
        return kind if self.ca_file else f"{kind} (certificates not verified)"


@dataclass(frozen=True)
class Endpoint:
    """A Cassandra-compatible endpoint reached by contact points."""

    contact_points: tuple[str, ...]
    port: int = 9042
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    local_datacenter: str | None = None
    tls: TlsSettings | None = None


@dataclass(frozen=True)
class CloudBundle:
    """An Astra DB database reached through its secure connect bundle."""

    secure_connect_bundle: str
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one mode."""

    mode: Mode
    endpoint: Endpoint | None
    cloud: CloudBundle | None
    keyspace: str = "zdmapp"
    consistency_level: str = "LOCAL_QUORUM"
    listen_address: str = "127.0.0.1"
    listen_port: int = 8000
    max_entries: int = 100
    max_user_bytes: int = 256
    max_status_bytes: int = 4096
    request_timeout: float = 10.0
    retry_window: float = 30.0
    speculative_delay: float = 0.5
    startup_wait: float = 30.0
    protocol_version: int | None = None
    source: str = "<defaults>"

    def describe(self) -> str:
        """A short, secret-free description for the startup log line."""
        if self.cloud is not None:
            where = f"bundle {self.cloud.secure_connect_bundle}"
        else:
            assert self.endpoint is not None
            points = ",".join(self.endpoint.contact_points)
            where = f"{points}:{self.endpoint.port}"
            if self.endpoint.tls is not None:
                where += f" over {self.endpoint.tls.describe()}"
        return f"mode={self.mode.value} cluster={where} keyspace={self.keyspace} cl={self.consistency_level}"


_TOP_KEYS = {
    "mode",
    "keyspace",
    "consistency_level",
    "listen_address",
    "listen_port",
    "max_entries",
    "max_user_bytes",
    "max_status_bytes",
    "request_timeout_seconds",
    "retry_window_seconds",
    "speculative_delay_seconds",
    "startup_wait_seconds",
    "protocol_version",
    "origin",
    "target",
    "proxy",
    "astra",
}
_CLUSTER_KEYS = {"contact_points", "port", "username", "password", "local_datacenter", "tls"}
_PROXY_KEYS = {"contact_points", "port", "local_datacenter", "tls"}
_TLS_KEYS = {"ca_file", "cert_file", "key_file", "verify_hostname"}
_ASTRA_KEYS = {"secure_connect_bundle", "client_id", "client_secret"}


def parse_mode(value: str, origin: str) -> Mode:
    """Turn a mode name (any case, ORIGIN alias allowed) into a :class:`Mode`."""
    name = value.strip().upper()
    if name in MODE_ALIASES:
        return MODE_ALIASES[name]
    try:
        return Mode(name)
    except ValueError:
        raise ConfigError(
            f"{origin}: unknown connection mode {value!r} (expected one of {', '.join(MODE_NAMES)})"
        ) from None


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The configuration file named by the environment, or the default one."""
    env = os.environ if environ is None else environ
    return Path(env.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def read_file(path: Path) -> dict[str, Any]:
    """Read a YAML or JSON mapping from ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found (set {CONFIG_ENV} to its path)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {first}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def load_settings(environ: Mapping[str, str] | None = None, path: Path | None = None) -> Settings:
    """Read the configuration file and the environment override, and resolve the mode."""
    env = os.environ if environ is None else environ
    source = path if path is not None else config_path(env)
    return build_settings(read_file(source), env, origin=str(source))


def build_settings(data: Mapping[str, Any], environ: Mapping[str, str], origin: str) -> Settings:
    """Validate a settings mapping and resolve what the selected mode needs."""
    _reject_unknown(data, _TOP_KEYS, origin, "")
    env_mode = environ.get(MODE_ENV, "").strip()
    if env_mode:
        mode = parse_mode(env_mode, f"{MODE_ENV} in the environment")
    elif data.get("mode") is not None:
        mode = parse_mode(_string(data, "mode", origin, ""), origin)
    else:
        raise ConfigError(f"{origin}: 'mode' is not set (set it, or {MODE_ENV}, to one of {', '.join(MODE_NAMES)})")

    keyspace = _string(data, "keyspace", origin, "", default="zdmapp")
    if not _IDENTIFIER.match(keyspace):
        raise ConfigError(f"{origin}: 'keyspace' {keyspace!r} is not a valid CQL identifier")
    consistency = _string(data, "consistency_level", origin, "", default="LOCAL_QUORUM").upper()
    if consistency not in CONSISTENCY_LEVELS:
        raise ConfigError(
            f"{origin}: 'consistency_level' {consistency!r} is not one of {', '.join(CONSISTENCY_LEVELS)}"
        )

    # Every section is checked for typos, also those the selected mode does not use.
    for name, keys in (
        ("origin", _CLUSTER_KEYS),
        ("target", _CLUSTER_KEYS),
        ("proxy", _PROXY_KEYS),
        ("astra", _ASTRA_KEYS),
    ):
        section = _section(data, name, origin)
        _reject_unknown(section, keys, origin, f"{name}.")
        if "tls" in keys:
            _reject_unknown(_section(section, "tls", origin, f"{name}."), _TLS_KEYS, origin, f"{name}.tls.")

    endpoint: Endpoint | None = None
    cloud: CloudBundle | None = None
    if mode is Mode.CASSANDRA:
        endpoint = _endpoint(data, "origin", "origin", origin, mode)
    elif mode is Mode.TARGET:
        endpoint = _endpoint(data, "target", "target", origin, mode)
    elif mode is Mode.ZDM_PROXY:
        # Clients of the ZDM proxy present the Target's credentials.
        endpoint = _endpoint(data, "proxy", "target", origin, mode)
    else:
        cloud = _cloud(_section(data, "astra", origin), origin)

    protocol = data.get("protocol_version")
    if protocol is not None:
        protocol = _integer(data, "protocol_version", origin, "", low=3, high=5)

    return Settings(
        mode=mode,
        endpoint=endpoint,
        cloud=cloud,
        keyspace=keyspace,
        consistency_level=consistency,
        listen_address=_string(data, "listen_address", origin, "", default="127.0.0.1"),
        listen_port=_integer(data, "listen_port", origin, "", default=8000, low=1, high=65535),
        max_entries=_integer(data, "max_entries", origin, "", default=100, low=1, high=10000),
        max_user_bytes=_integer(data, "max_user_bytes", origin, "", default=256, low=1, high=65535),
        max_status_bytes=_integer(data, "max_status_bytes", origin, "", default=4096, low=1, high=1048576),
        request_timeout=_number(data, "request_timeout_seconds", origin, default=10.0, low=0.1, high=600.0),
        retry_window=_number(data, "retry_window_seconds", origin, default=30.0, low=0.0, high=3600.0),
        speculative_delay=_number(data, "speculative_delay_seconds", origin, default=0.5, low=0.0, high=60.0),
        startup_wait=_number(data, "startup_wait_seconds", origin, default=30.0, low=0.0, high=600.0),
        protocol_version=protocol,
        source=origin,
    )


def _endpoint(data: Mapping[str, Any], name: str, cred_name: str, origin: str, mode: Mode) -> Endpoint:
    section = _section(data, name, origin)
    credentials = _section(data, cred_name, origin)
    raw = section.get("contact_points")
    if isinstance(raw, str):
        raw = [p for p in (s.strip() for s in raw.split(",")) if p]
    if not raw:
        raise ConfigError(f"{origin}: '{name}.contact_points' is required for mode {mode.value}")
    if not isinstance(raw, list) or not all(isinstance(p, str) and p.strip() for p in raw):
        raise ConfigError(f"{origin}: '{name}.contact_points' must be a list of host names or addresses")
    username = _optional_string(credentials, "username", origin, f"{cred_name}.")
    password = _optional_string(credentials, "password", origin, f"{cred_name}.")
    if username is not None and password is None:
        raise ConfigError(f"{origin}: '{cred_name}.password' is required when '{cred_name}.username' is set")
    if password is not None and username is None:
        raise ConfigError(f"{origin}: '{cred_name}.username' is required when '{cred_name}.password' is set")
    return Endpoint(
        contact_points=tuple(p.strip() for p in raw),
        port=_integer(section, "port", origin, f"{name}.", default=9042, low=1, high=65535),
        username=username,
        password=password,
        local_datacenter=_optional_string(section, "local_datacenter", origin, f"{name}."),
        tls=_tls(section, name, origin),
    )


def _tls(section: Mapping[str, Any], name: str, origin: str) -> TlsSettings | None:
    """The endpoint's TLS settings; None (plain CQL) without a CA and a client certificate."""
    tls = _section(section, "tls", origin, f"{name}.")
    prefix = f"{name}.tls."
    files = {key: _optional_string(tls, key, origin, prefix) for key in ("ca_file", "cert_file", "key_file")}
    verify_hostname = tls.get("verify_hostname")
    if verify_hostname is None:
        verify_hostname = False
    if not isinstance(verify_hostname, bool):
        raise ConfigError(f"{origin}: '{prefix}verify_hostname' must be true or false")
    if files["key_file"] is not None and files["cert_file"] is None:
        raise ConfigError(f"{origin}: '{prefix}cert_file' is required when '{prefix}key_file' is set")
    if files["cert_file"] is not None and files["key_file"] is None:
        raise ConfigError(f"{origin}: '{prefix}key_file' is required when '{prefix}cert_file' is set")
    if verify_hostname and files["ca_file"] is None:
        raise ConfigError(
            f"{origin}: '{prefix}verify_hostname' needs '{prefix}ca_file' (the CA the host names are checked with)"
        )
    if files["ca_file"] is None and files["cert_file"] is None:
        return None
    for key, path in files.items():
        if path is not None:
            _check_readable(path, origin, f"{prefix}{key}")
    _check_pem(files["ca_file"], files["cert_file"], files["key_file"], origin, prefix)
    return TlsSettings(**files, verify_hostname=verify_hostname)


def _check_readable(path: str, origin: str, key: str) -> None:
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"{origin}: '{key}' is {path}, which does not exist")
    if not file.is_file():
        raise ConfigError(f"{origin}: '{key}' is {path}, which is not a file")
    try:
        with file.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{origin}: '{key}' is {path}, which cannot be read: {exc.strerror}") from None


def _no_passphrase() -> str:
    raise ConfigError("encrypted private keys are not supported")


def _check_pem(ca_file: str | None, cert_file: str | None, key_file: str | None, origin: str, prefix: str) -> None:
    """Load the PEM files the way the connection will, so that a wrong file is named now."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"{origin}: '{prefix}ca_file' {ca_file} holds no usable PEM CA certificate: {_ssl_reason(exc)}"
            ) from None
    if cert_file is not None:
        try:
            context.load_cert_chain(certfile=cert_file, keyfile=key_file, password=_no_passphrase)
        except (ssl.SSLError, OSError, ConfigError) as exc:
            raise ConfigError(
                f"{origin}: '{prefix}cert_file' {cert_file} and '{prefix}key_file' {key_file} are not a PEM "
                f"certificate and its unencrypted key: {_ssl_reason(exc)}"
            ) from None


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if reason:  # OpenSSL's code, e.g. KEY_VALUES_MISMATCH
        return str(reason).replace("_", " ").lower()
    text = " ".join(str(getattr(exc, "strerror", None) or exc).split())
    return re.sub(r"\s*\(_ssl\.c:\d+\)", "", text)


def _cloud(section: Mapping[str, Any], origin: str) -> CloudBundle:
    values = {}
    for key in ("secure_connect_bundle", "client_id", "client_secret"):
        value = _optional_string(section, key, origin, "astra.")
        if value is None:
            raise ConfigError(f"{origin}: 'astra.{key}' is required for mode {Mode.ASTRA_DB.value}")
        values[key] = value
    return CloudBundle(**values)


def _section(data: Mapping[str, Any], name: str, origin: str, prefix: str = "") -> Mapping[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{origin}: '{prefix}{name}' must be a mapping")
    return value


def _reject_unknown(data: Mapping[str, Any], known: set[str], origin: str, prefix: str) -> None:
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ConfigError(f"{origin}: unknown setting '{prefix}{unknown[0]}' (known: {', '.join(sorted(known))})")


def _string(data: Mapping[str, Any], key: str, origin: str, prefix: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{origin}: '{prefix}{key}' must be a non-empty string")
    return value.strip()


def _optional_string(data: Mapping[str, Any], key: str, origin: str, prefix: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: '{prefix}{key}' must be a string")
    return value


def _integer(
    data: Mapping[str, Any],
    key: str,
    origin: str,
    prefix: str,
    *,
    default: int | None = None,
    low: int,
    high: int,
) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{origin}: '{prefix}{key}' must be an integer between {low} and {high}")
    if not low <= value <= high:
        raise ConfigError(f"{origin}: '{prefix}{key}' is {value}; it must be between {low} and {high}")
    return value


def _number(data: Mapping[str, Any], key: str, origin: str, *, default: float, low: float, high: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{origin}: '{key}' must be a number of seconds between {low:g} and {high:g}")
    if not low <= value <= high:
        raise ConfigError(f"{origin}: '{key}' is {value:g}; it must be between {low:g} and {high:g}")
    return float(value)
