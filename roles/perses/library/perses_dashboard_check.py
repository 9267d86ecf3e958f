#!/usr/bin/python
# Ask the running Perses to validate dashboards and Prometheus to parse each of their queries.

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: perses_dashboard_check
short_description: Validate Perses dashboards with the running server and parse their PromQL with Prometheus
description:
  - Posts every dashboard to the server's C(/api/validate/dashboards), which checks it against the
    loaded plugins' schemas (an unknown panel kind, a field a plugin does not know).
  - Sends every panel query and every variable selector to Prometheus' C(/api/v1/format_query),
    which parses it without running it; Perses itself does not parse PromQL.
  - Changes nothing, so it also runs in check mode. It does not fail on a refusal: it returns the
    refusals, for the caller to report.
options:
  perses_url:
    description: Base URL of the running Perses.
    type: str
    required: true
  prometheus_url:
    description: Base URL of Prometheus.
    type: str
    required: true
  dashboards:
    description: The dashboards, each C({file, board}) with the parsed dashboard as C(board).
    type: list
    elements: dict
    required: true
  builtin_variables:
    description: Values for the variables Perses defines itself (C($__rate_interval) ...); the
      dashboards' own variables are replaced by a match-all regular expression.
    type: dict
    default: {}
  timeout:
    description: Seconds to wait for each answer.
    type: int
    default: 20
"""

EXAMPLES = r"""
- name: Validate the dashboards
  perses_dashboard_check:
    perses_url: http://10.0.4.11:3000
    prometheus_url: http://10.0.4.11:9090
    dashboards: [{file: hosts.yaml, board: "{{ lookup('file', 'hosts.yaml') | from_yaml }}"}]
    builtin_variables: {__rate_interval: 1m}
"""

RETURN = r"""
refused:
  description: Dashboards the server refused, each C({file, message}).
  type: list
  returned: always
unparsed:
  description: Queries Prometheus could not parse, each C({file, where, expr, message}).
  type: list
  returned: always
queries:
  description: How many queries were parsed.
  type: int
  returned: always
"""

VARIABLE = re.compile(r"\$\{?(\w+)\}?")


def _post(url: str, body: bytes, content_type: str, timeout: int) -> tuple[int, dict]:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url}: not an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 -- checked to be http(s) above
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 -- operator-given http URL
            status, text = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    try:
        return status, json.loads(text or b"{}")
    except ValueError:
        return status, {"message": text.decode("utf-8", "replace")[:300]}


def queries(board: dict) -> list[tuple[str, str]]:
    found = []
    spec = board.get("spec") or {}
    for key, panel in (spec.get("panels") or {}).items():
        for query in (panel.get("spec") or {}).get("queries") or []:
            expr = (((query.get("spec") or {}).get("plugin") or {}).get("spec") or {}).get("query", "")
            found.append((f"panel {key}", expr))
    for variable in spec.get("variables") or []:
        vspec = variable.get("spec") or {}
        plugin = (vspec.get("plugin") or {}).get("spec") or {}
        for expr in [*(plugin.get("matchers") or []), *([plugin["expr"]] if "expr" in plugin else [])]:
            found.append((f"variable {vspec.get('name')}", expr))
    return found


def substitute(expr: str, builtins: dict) -> str:
    return VARIABLE.sub(lambda m: str(builtins.get(m.group(1), ".*")), expr)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "perses_url": {"type": "str", "required": True},
            "prometheus_url": {"type": "str", "required": True},
            "dashboards": {"type": "list", "elements": "dict", "required": True},
            "builtin_variables": {"type": "dict", "default": {}},
            "timeout": {"type": "int", "default": 20},
        },
        supports_check_mode=True,
    )
    perses = module.params["perses_url"].rstrip("/")
    prometheus = module.params["prometheus_url"].rstrip("/")
    timeout = module.params["timeout"]
    refused, unparsed, count = [], [], 0
    try:
        for item in module.params["dashboards"]:
            name, board = item["file"], item["board"]
            status, answer = _post(
                f"{perses}/api/validate/dashboards", json.dumps(board).encode(), "application/json", timeout
            )
            if status != 200:
                refused.append({"file": name, "message": answer.get("message", f"HTTP {status}")})
            for where, expr in queries(board):
                count += 1
                body = urllib.parse.urlencode({"query": substitute(expr, module.params["builtin_variables"])})
                status, answer = _post(
                    f"{prometheus}/api/v1/format_query", body.encode(), "application/x-www-form-urlencoded", timeout
                )
                if status != 200:
                    unparsed.append(
                        {"file": name, "where": where, "expr": expr, "message": answer.get("error", f"HTTP {status}")}
                    )
    except (OSError, urllib.error.URLError) as exc:
        module.fail_json(msg=f"no answer from Perses at {perses} or Prometheus at {prometheus}: {exc}")
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, refused=refused, unparsed=unparsed, queries=count)


if __name__ == "__main__":
    main()
