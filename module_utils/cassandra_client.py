# Shared by the role's CQL modules: connection arguments, login with fallback, errors.
# Runs wherever the module runs: on a managed node with the cqlsh virtualenv's cassandra-driver,
# or on the controller for clusters the role does not manage.

from __future__ import annotations

import ssl
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    from cassandra import ConsistencyLevel
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy, WhiteListRoundRobinPolicy
except ImportError:
    HAS_DRIVER = False
    DRIVER_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_DRIVER = True
    DRIVER_IMPORT_ERROR = None


CONNECTION_ARGS = dict(
    hosts=dict(type="list", elements="str", required=True),
    port=dict(type="int", default=9042),
    login_user=dict(type="str", required=True),
    login_password=dict(type="str", required=True, no_log=True),
    fallback_user=dict(type="str"),
    fallback_password=dict(type="str", no_log=True),
    local_dc=dict(type="str"),
    pin_first_host=dict(type="bool", default=False),
    connect_timeout=dict(type="float", default=10.0),
    request_timeout=dict(type="float", default=30.0),
    ssl_ca_file=dict(type="path"),
    ssl_cert_file=dict(type="path"),
    ssl_key_file=dict(type="path", no_log=False),
    secure_connect_bundle=dict(type="path"),
)

CONNECTION_DOC = r"""
  hosts:
    description: Contact points (addresses of nodes of the cluster).
    type: list
    elements: str
    required: true
  port:
    description: CQL native transport port.
    type: int
    default: 9042
  login_user:
    description: Role to log in with.
    type: str
    required: true
  login_password:
    description: Password of O(login_user).
    type: str
    required: true
  fallback_user:
    description: Role tried when O(login_user) is refused (a new cluster whose admin password is not set yet).
    type: str
  fallback_password:
    description: Password of O(fallback_user).
    type: str
  local_dc:
    description: Data centre whose nodes coordinate the requests; default the driver's choice.
    type: str
  pin_first_host:
    description: Send every request to the first of O(hosts) only (a health probe of that node).
    type: bool
    default: false
  connect_timeout:
    description: Seconds to wait for a connection.
    type: float
    default: 10.0
  request_timeout:
    description: Seconds to wait for a request.
    type: float
    default: 30.0
  ssl_ca_file:
    description: CA certificates (PEM) the nodes' certificates must chain to; turns TLS on.
    type: path
  ssl_cert_file:
    description: Client certificate (PEM) for nodes that require one; turns TLS on. May also hold the key.
    type: path
  ssl_key_file:
    description: Private key (PEM) of O(ssl_cert_file) when it is in a file of its own.
    type: path
  secure_connect_bundle:
    description: An Astra DB secure connect bundle; replaces O(hosts), O(port) and the TLS options.
    type: path
"""


class LoginRefused(Exception):
    """Every node refused the credentials (as opposed to being unreachable)."""


def require_driver(module):
    if not HAS_DRIVER:
        module.fail_json(msg=missing_required_lib("cassandra-driver"), exception=DRIVER_IMPORT_ERROR)


def _is_auth_failure(exc):
    if not isinstance(exc, NoHostAvailable):
        return False
    errors = list(exc.errors.values())
    return bool(errors) and all(
        "AuthenticationFailed" in type(err).__name__ or "Bad credentials" in str(err) for err in errors
    )


def ssl_context(params):
    """TLS context for the connection options, or None for plaintext."""
    if not (params.get("ssl_ca_file") or params.get("ssl_cert_file")):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Nodes are reached by address; the certificate must chain to the CA, its name is not checked.
    context.check_hostname = False
    if params.get("ssl_ca_file"):
        context.load_verify_locations(cafile=params["ssl_ca_file"])
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE
    if params.get("ssl_cert_file"):
        context.load_cert_chain(certfile=params["ssl_cert_file"], keyfile=params.get("ssl_key_file") or None)
    return context


def open_session(params, user, password, consistency="LOCAL_QUORUM", hosts=None, row_factory=None):
    """Return (cluster, session) logged in as user; LoginRefused when the credentials are refused."""
    hosts = hosts or params["hosts"]
    if params.get("pin_first_host"):
        policy = WhiteListRoundRobinPolicy([hosts[0]])
        hosts = hosts[:1]
    elif params.get("local_dc"):
        policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=params["local_dc"]))
    else:
        policy = TokenAwarePolicy(DCAwareRoundRobinPolicy())
    profile = ExecutionProfile(
        load_balancing_policy=policy,
        consistency_level=getattr(ConsistencyLevel, consistency),
        request_timeout=params["request_timeout"],
    )
    if row_factory is not None:
        profile.row_factory = row_factory
    if params.get("secure_connect_bundle"):
        # The bundle names the nodes and carries the TLS material.
        endpoint = {"cloud": {"secure_connect_bundle": params["secure_connect_bundle"]}}
    else:
        endpoint = {"contact_points": hosts, "port": params["port"], "ssl_context": ssl_context(params)}
    cluster = Cluster(
        auth_provider=PlainTextAuthProvider(username=user, password=password),
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=params["connect_timeout"],
        control_connection_timeout=params["connect_timeout"],
        **endpoint,
    )
    try:
        session = cluster.connect()
    except Exception as exc:
        cluster.shutdown()
        if _is_auth_failure(exc):
            raise LoginRefused(str(exc)) from exc
        raise
    return cluster, session


def connect(module, consistency="LOCAL_QUORUM", row_factory=None):
    """Log in with login_user, else fallback_user; return (cluster, session, which) or fail the module."""
    params = module.params
    candidates = [("login", params["login_user"], params["login_password"])]
    fallback = (params.get("fallback_user"), params.get("fallback_password"))
    if all(fallback) and fallback != (params["login_user"], params["login_password"]):
        candidates.append(("fallback", *fallback))
    refused = []
    for which, user, password in candidates:
        try:
            cluster, session = open_session(params, user, password, consistency, row_factory=row_factory)
        except LoginRefused:
            refused.append(user)
            continue
        except Exception as exc:
            module.fail_json(msg=f"cannot connect to {', '.join(params['hosts'])}:{params['port']}: {exc}")
        return cluster, session, which
    module.fail_json(msg=f"login refused for {' and '.join(refused)} on {', '.join(params['hosts'])}", refused=refused)


def can_login(params, user, password, hosts=None):
    """True when user/password is accepted, False when refused; raises when nothing answers."""
    try:
        cluster, _session = open_session(dict(params, pin_first_host=False), user, password, hosts=hosts)
    except LoginRefused:
        return False
    cluster.shutdown()
    return True


def quote_ident(name):
    """CQL identifier, always double-quoted: safe for reserved words, exact for mixed case."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value):
    """CQL literal for a string, number, boolean or map (table and keyspace options)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{quote_literal(str(k))}: {quote_literal(v)}" for k, v in value.items()) + "}"
    return "'" + str(value).replace("'", "''") + "'"
