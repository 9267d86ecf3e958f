"""``zdmkit-artifacts``: fill and inspect the artifact cache.

  zdmkit-artifacts fetch [--for lab|test] [NAME ...]   fetch what is missing (cache hits are free)
  zdmkit-artifacts check --for lab                     fail, one line per artifact, when any is missing
  zdmkit-artifacts list                                what the manifest names and what is cached
  zdmkit-artifacts dir                                 print the cache directory

With --for, artifacts needed for that purpose must succeed (exit 1 otherwise); the others
are still tried, and a failure of theirs is reported as a warning.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from zdmkit.artifacts import fetch as f

FAILURES = ".failures.json"


def _record_failure(cache: Path, name: str, message: str | None) -> None:
    path = cache / FAILURES
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if message is None:
        data.pop(name, None)
    else:
        data[name] = message
    f.write_json_atomic(path, data)


def _select(entries: list[dict], names: list[str]) -> list[dict]:
    known = {e["name"] for e in entries}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(
            f"zdmkit-artifacts: unknown artifact(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return [e for e in entries if not names or e["name"] in names]


# Artifacts of one lane are produced one after the other, the lanes side by side: every Maven
# build and download shares the local Maven repository (Maven 3.8 does not lock it), the others
# share nothing but the network and the two cores.
LANES = {"maven": "maven", "maven-assembly": "maven", "maven-source": "maven", "go-source": "go",
         "pip-wheels": "pip", "pip-build": "pip", "prebuilt": "files"}


def lanes(entries: list[dict]) -> list[list[dict]]:
    """The entries grouped by the tool they share, each lane in manifest order."""
    grouped: dict[str, list[dict]] = {}
    for entry in entries:
        grouped.setdefault(LANES.get(entry["source"]["kind"], entry["source"]["kind"]), []).append(entry)
    return list(grouped.values())


def cmd_fetch(args: argparse.Namespace) -> int:
    cache = f.cache_dir()
    entries = _select(f.load_manifest(), args.names)
    failed_required = 0
    report = threading.Lock()

    def fetch_lane(lane: list[dict]) -> None:
        nonlocal failed_required
        for entry in lane:
            required = args.purpose is None or args.purpose in entry["needed_by"]
            started = time.monotonic()
            try:
                outcome = f.fetch(entry, cache, force=args.force)
            except f.ArtifactError as exc:
                with report:
                    _record_failure(cache, entry["name"], str(exc))
                    if required:
                        failed_required += 1
                        print(f"error: {exc}", file=sys.stderr, flush=True)
                    else:
                        print(f"warning: {exc} (not needed for {args.purpose})", file=sys.stderr, flush=True)
                continue
            took = time.monotonic() - started
            with report:
                _record_failure(cache, entry["name"], None)
                print(f"{outcome.name:<26} {outcome.status:<8} {took:6.1f}s  {outcome.path}  {outcome.detail}",
                      flush=True)

    with f.locked(cache):
        f.clean_partials(cache)
        groups = lanes(entries)
        with ThreadPoolExecutor(max_workers=max(1, len(groups))) as pool:
            for done in [pool.submit(fetch_lane, lane) for lane in groups]:
                done.result()
    return 1 if failed_required else 0


def cmd_check(args: argparse.Namespace) -> int:
    cache = f.cache_dir()
    try:
        failures = json.loads((cache / FAILURES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        failures = {}
    missing = 0
    for entry in f.load_manifest():
        if args.purpose not in entry["needed_by"] or f.is_cached(cache, entry):
            continue
        missing += 1
        reason = failures.get(entry["name"]) or (
            f"artifact {entry['name']} {entry['version']} from {f.describe_source(entry)}: not in {cache}"
            " (run `make artifacts`)"
        )
        print(f"error: {args.purpose} needs {reason}", file=sys.stderr)
    return 1 if missing else 0


def cmd_list(_: argparse.Namespace) -> int:
    cache = f.cache_dir()
    for entry in f.load_manifest():
        state = "cached" if f.is_cached(cache, entry) else "missing"
        print(f"{entry['name']:<26} {entry['version']:<10} {state:<8} {f.describe_source(entry)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="zdmkit-artifacts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="fetch missing artifacts")
    p_fetch.add_argument("names", nargs="*")
    p_fetch.add_argument("--for", dest="purpose", choices=["lab", "test"])
    p_fetch.add_argument("--force", action="store_true", help="fetch again even when cached")
    p_fetch.set_defaults(func=cmd_fetch)
    p_check = sub.add_parser("check", help="fail when an artifact needed for PURPOSE is missing")
    p_check.add_argument("--for", dest="purpose", choices=["lab", "test"], required=True)
    p_check.set_defaults(func=cmd_check)
    sub.add_parser("list", help="list the manifest and the cache state").set_defaults(func=cmd_list)
    sub.add_parser("dir", help="print the cache directory").set_defaults(
        func=lambda _: print(f.cache_dir()) or 0
    )
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
