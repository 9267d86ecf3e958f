"""TLS towards Cassandra nodes (client-to-node encryption), for every client in zdmkit.

The migration engine and the demo application describe the same thing: an optional CA that
the nodes' certificates must chain to, and an optional client certificate with its key for
clusters that ask for one (mutual TLS).
"""

from __future__ import annotations

import ssl


def client_context(
    ca_file: str | None,
    cert_file: str | None = None,
    key_file: str | None = None,
    *,
    verify_hostname: bool = False,
) -> ssl.SSLContext | None:
    """An SSL context for cassandra-driver's ``ssl_context``, or None when neither a CA nor a
    client certificate is given (plain CQL).

    With a CA the nodes' certificates are verified (and their host names too when asked).
    Without one, TLS only encrypts: nothing is verified and ``verify_hostname`` is ignored.
    """
    if not (ca_file or cert_file):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file:
        context.check_hostname = verify_hostname
        context.load_verify_locations(cafile=ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file:
        context.load_cert_chain(certfile=cert_file, keyfile=key_file or None)
    return context
