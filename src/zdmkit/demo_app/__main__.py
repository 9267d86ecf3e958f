"""Run the demo application: ``zdmkit-demo-app`` or ``python -m zdmkit.demo_app``.

The listen address and port come from the configuration file unless given here. Under
systemd socket activation (``zdmkit-demo-app.socket``) the passed socket is served instead,
see :mod:`zdmkit.demo_app.serving`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .config import CONFIG_ENV

GRACEFUL_STOP_SECONDS = 10


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zdmkit-demo-app", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help=f"configuration file (default: ${CONFIG_ENV} or /etc/zdmkit/demo-app.yml)")
    parser.add_argument("--host", help="listen address (default: listen_address from the file)")
    parser.add_argument("--port", type=int, help="listen port (default: listen_port from the file)")
    parser.add_argument(
        "--check-config", action="store_true", help="validate the configuration, print a summary and exit"
    )
    args = parser.parse_args(argv)
    if args.config:
        os.environ[CONFIG_ENV] = args.config
    if args.check_config:
        from .config import ConfigError, load_settings

        try:
            settings = load_settings()
        except ConfigError as exc:
            print(f"zdmkit-demo-app: configuration error: {exc}", file=sys.stderr)
            return 2
        print(f"configuration ok: {settings.describe()}")
        return 0

    # Imported here so that --help works without the web stack's import cost.
    import uvicorn

    from .api import create_app, load_or_exit
    from .logs import LOGGER_NAME
    from .serving import ActivationError, Server, describe, inherited_sockets

    settings = load_or_exit()
    try:
        sockets = inherited_sockets()
    except ActivationError as exc:
        print(f"zdmkit-demo-app: {exc}", file=sys.stderr, flush=True)
        return 2
    config = uvicorn.Config(
        create_app(settings),
        host=args.host or settings.listen_address,
        port=args.port or settings.listen_port,
        # The application logs each request itself, as one JSON line.
        access_log=False,
        proxy_headers=False,
        server_header=False,
        # In-flight requests get this long to finish on a stop (systemd's TimeoutStopSec is longer).
        timeout_graceful_shutdown=GRACEFUL_STOP_SECONDS,
    )
    if sockets:
        logging.getLogger(LOGGER_NAME).info(
            "serving the sockets passed by systemd",
            extra={"fields": {"event": "socket_activation", "listen": [describe(sock) for sock in sockets]}},
        )
    Server(config).run(sockets=sockets or None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
