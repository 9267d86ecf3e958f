#!/usr/bin/env python3
"""Every check the suite had at a base revision, and where it runs now (by test name).

    python3 scripts/test_inventory.py --base 3107002 [--out docs/test-inventory.md]

A check is a pytest test function (``file::function``, parametrized cases counted) or a named
task of a Molecule scenario's verify step (``molecule/<scenario>/...::<task name>``). Each check
of the base is looked up in the working tree by its name; checks renamed or folded into another
test are listed in RENAMED with where they went. The exit status is 1 when a base check is found
nowhere, so the list proves what it says.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# base check -> where it runs now, for checks whose name changed (the reason in the comment)
RENAMED = {
    # the tls scenario now starts in phase 0 and moves the app to Target in phase 5
    "tests/integration/test_tls.py::test_app_reaches_target_with_its_client_certificate":
        "tests/integration/test_tls_migration.py::test_phase_4_and_5_over_tls",
    # the site scenario's story became the first steps of the lab scenario's
    "tests/integration/test_site.py::test_status_reports_phase_0":
        "tests/integration/lab/test_10_phase0.py::test_status_reports_phase_0",
    "tests/integration/test_site.py::test_report_draws_every_chart_with_data":
        "tests/integration/lab/test_20_phase1.py::test_the_report_draws_every_chart_with_data",
    "tests/integration/test_site.py::test_bad_input_is_refused_before_any_change":
        "tests/integration/lab/test_15_site_inputs.py::test_bad_input_is_refused_before_any_change",
    "tests/integration/test_site.py::test_no_service_restarted_by_the_refused_runs":
        "tests/integration/lab/test_15_site_inputs.py::test_no_service_restarted_by_the_refused_runs",
    "tests/integration/test_site.py::test_secret_never_shows_at_highest_verbosity":
        "tests/integration/lab/test_15_site_inputs.py::test_secret_never_shows_at_highest_verbosity",
    "tests/integration/test_site.py::test_services_listen_on_the_service_address_only":
        "tests/integration/lab/test_15_site_inputs.py::test_services_listen_on_the_service_address_only",
    "molecule/site/verify.yml::Run the site tests (status report, bad-input suite, secrets at the highest verbosity)":
        "molecule/lab/verify.yml::Run the story's tests in order (proxies, phases, rollback, faults, bad input, "
    "the report)",
    # the demo app's scenario names its assertions after what they now also prove
    "molecule/demo_app/verify.yml::Assert that no acknowledged write is missing and both phases were written":
        "molecule/demo_app/verify.yml::Assert that every attempt was acknowledged and stored, in both phases",
    "molecule/demo_app/verify.yml::Assert that the application now runs in mode TARGET":
        "molecule/demo_app/verify.yml::Assert that a new run of the application now serves in mode TARGET",
    # the scenarios' test runs name what they run now
    "molecule/migrate/verify.yml::Run the integration tests (engine; phase2.yml with its guard, record, bad input and "
    "secrets)": "molecule/migrate/verify.yml::Run the integration tests (engines, CDM, DSBulk Migrator, the Spark "
    "cluster; phase2.yml)",
    # the dashboards moved to Perses: their queries run through Perses against the live Prometheus
    "molecule/monitoring/tasks/dashboards.yml::Run every dashboard query":
        "tests/integration/test_perses_dashboards.py::test_every_query_runs_through_perses",
    "molecule/monitoring/verify.yml::Check every dashboard query against the live Prometheus":
        "tests/integration/test_perses_dashboards.py::test_every_query_runs_through_perses",
    "molecule/monitoring/tasks/dashboards.yml::Assert that every query parses and runs":
        "tests/integration/test_perses_dashboards.py::test_every_query_runs_through_perses",
    "molecule/monitoring/tasks/dashboards.yml::Assert that every panel and variable of the Cassandra and host "
    "dashboards returns data": "tests/integration/test_perses_dashboards.py::test_every_query_runs_through_perses",
    "molecule/monitoring/tasks/dashboards.yml::Assert that the four dashboards were read":
        "tests/integration/test_perses_dashboards.py::test_every_dashboard_is_provisioned_as_in_the_repository",
    "tests/unit/test_dashboards.py::test_dashboard_structure":
        "tests/unit/test_dashboards.py::test_dashboard_source_follows_the_rules",
    "tests/unit/test_dashboards.py::test_the_four_dashboards_are_there":
        "tests/unit/test_dashboards.py::test_the_five_dashboards_are_there",
    # the tls scenario's test run now also runs the migration over TLS through the proxies
    "molecule/tls/verify.yml::Run the integration tests (plaintext refused, client certificates, engine, app, bad "
    "input)": "molecule/tls/verify.yml::Run the integration tests (TLS on every link, then the whole migration "
    "over TLS)",
    # the retry policy's own module
    "tests/unit/test_demo_app_routes.py::test_retry_policy_only_retries_idempotent_statements":
        "tests/unit/test_demo_app_db.py::test_retry_policy_goes_to_the_next_host_only_when_safe",
}


def git_files(rev: str | None, pattern: str) -> dict[str, str]:
    """{path: text} of the files matching pattern, at rev or in the working tree."""
    if rev is None:
        return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in ROOT.glob(pattern)}
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    regex = re.compile("^" + re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*") + "$")
    return {n: subprocess.run(["git", "show", f"{rev}:{n}"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout for n in names if regex.match(n)}


def pytest_checks(files: dict[str, str]) -> dict[str, int]:
    """{file::test: number of cases} for every test function (parametrize lists counted)."""
    found = {}
    for path, text in files.items():
        if not Path(path).name.startswith("test_"):
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                cases = 1
                for deco in node.decorator_list:
                    if (isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == "parametrize"
                            and len(deco.args) > 1 and isinstance(deco.args[1], ast.List | ast.Tuple)):
                        cases *= len(deco.args[1].elts)
                found[f"{path}::{node.name}"] = cases
    return found


def task_names(plays) -> list[str]:
    names = []
    for item in plays or []:
        if not isinstance(item, dict):
            continue
        for key in ("tasks", "block", "rescue", "always", "pre_tasks", "post_tasks"):
            names += task_names(item.get(key))
        if "name" in item and not ({"hosts", "tasks", "block"} & item.keys()):
            names.append(item["name"])
    return names


def molecule_checks(files: dict[str, str]) -> dict[str, int]:
    found = {}
    for path, text in files.items():
        scenario_part = path.split("/")[2] if path.count("/") >= 2 else ""
        if not (path.endswith("verify.yml") or "/tasks/" in path) or scenario_part == "shared":
            continue
        for name in task_names(yaml.safe_load(text)):
            if re.match(r"(Assert|Check|Run|Wait until|Fail)", name):
                found[f"{path}::{name}"] = 1
    return found


def scenarios_running(files: dict[str, str]) -> dict[str, str]:
    """Which scenario's verify runs each integration test file or directory."""
    runs = {}
    for path, text in files.items():
        if path.endswith("verify.yml"):
            scenario = path.split("/")[1]
            for ref in re.findall(r"tests/integration/[\w/.]+", text):
                runs[ref.rstrip("/")] = scenario
    return runs


def make_test_scenarios(rev: str | None) -> set[str]:
    """The scenarios `make test` runs (the Makefile's SCENARIOS) at a revision."""
    makefile = git_files(rev, "Makefile").get("Makefile", "")
    found = re.search(r"^SCENARIOS \?= (.*)$", makefile, re.M)
    return set(found.group(1).split()) if found else set()


def lab_tests_in_make_test(rev: str | None) -> list[str]:
    """The lab story's files make test runs (the Makefile's LAB_TESTS); none: the whole story."""
    makefile = git_files(rev, "Makefile").get("Makefile", "").replace("\\\n", " ")
    found = re.search(r"^LAB_TESTS \?= (.*)$", makefile, re.M)
    return found.group(1).split() if found else []


def checks(rev: str | None) -> tuple[dict[str, int], dict[str, str]]:
    tests = git_files(rev, "tests/**/*.py")
    molecule = git_files(rev, "molecule/**/*.yml")
    runs = scenarios_running(molecule)
    runs["<make test>"] = " ".join(sorted(make_test_scenarios(rev)))
    runs["<lab tests>"] = " ".join(lab_tests_in_make_test(rev))
    return {**pytest_checks(tests), **molecule_checks(molecule)}, runs


def where(check: str, runs: dict[str, str]) -> str:
    path = check.split("::", 1)[0]
    in_make_test = runs.get("<make test>", "").split()
    lab_tests = runs.get("<lab tests>", "").split()

    def scenario(name: str) -> str:
        if name not in in_make_test:
            return f"molecule {name}, not in make test"
        if name == "lab" and lab_tests and path not in lab_tests:
            return "molecule lab, the whole story: make story"
        return f"molecule {name}"

    if path.startswith("tests/unit"):
        return "unit tests"
    if path.startswith("molecule/"):
        return scenario(path.split("/")[1])
    for ref, name in runs.items():
        if not ref.startswith("<") and (path == ref or path.startswith(ref + "/")):
            return scenario(name)
    return "not run by any scenario"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the revision whose checks must all still run")
    p.add_argument("--out", default=None, help="write the Markdown table here (default: stdout)")
    args = p.parse_args(argv)
    before, runs_before = checks(args.base)
    after, runs_after = checks(None)
    by_name: dict[str, list[str]] = {}
    for check in after:
        by_name.setdefault(check.split("::", 1)[1], []).append(check)
    rows, lost = [], []
    for check in sorted(before):
        if check in after:
            now = [check]
        elif check in RENAMED:
            now = [RENAMED[check]]
        else:  # moved to another file under the same name
            now = by_name.get(check.split("::", 1)[1], [])
        now = [c for c in now if c in after]
        if not now or all(where(c, runs_after) == "not run by any scenario" for c in now):
            lost.append(check)
        rows.append((check, before[check], where(check, runs_before),
                     ", ".join(f"{c} ({where(c, runs_after)})" for c in now) or "**not found**"))
    new = sorted(set(after) - {c for c in after if any(c in r[3] for r in rows)})
    out = [f"# Every check, before and after\n\nWritten by `scripts/test_inventory.py --base {args.base}`: each check "
           f"the suite had at `{args.base}`, and where it runs now. {len(before)} checks then "
           f"({sum(before.values())} cases), {len(after)} now ({sum(after.values())} cases); "
           f"{len(lost)} not found or not run.\n",
           "| check at the base | cases | ran in | runs now in |", "|---|---:|---|---|"]
    out += [f"| `{c}` | {n} | {w} | {now} |" for c, n, w, now in rows]
    out += ["", f"## Added since ({len(new)})", ""]
    out += [f"- `{c}` ({where(c, runs_after)})" for c in new]
    text = "\n".join(out) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    for check in lost:
        print(f"test_inventory: {check} of {args.base} runs nowhere now", file=sys.stderr)
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
