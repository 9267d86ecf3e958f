"""``python -m zdmkit.dashboards``: check the dashboards and write their Grafana exports.

  python -m zdmkit.dashboards export   check every source, write grafana/<name>.json (make dashboards)
  python -m zdmkit.dashboards check    check every source, fail when an export is not what export writes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zdmkit.dashboards import DashboardError, export, source_dir, sources, stale_exports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zdmkit.dashboards", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["export", "check"])
    parser.add_argument("--source", type=Path, default=None, help="folder of the Perses dashboards (*.yaml)")
    parser.add_argument("--out", type=Path, default=None, help="folder of the Grafana exports (default SOURCE/grafana)")
    args = parser.parse_args(argv)
    source = args.source or source_dir()
    out = args.out or source / "grafana"
    if not sources(source):
        print(f"dashboards: no *.yaml in {source}", file=sys.stderr)
        return 2
    try:
        if args.command == "export":
            changed = export(source, out)
            for path in changed:
                print(f"dashboards: wrote {path}" if path.exists() else f"dashboards: removed {path}")
            print(f"dashboards: {len(sources(source))} checked, {len(changed)} exports changed in {out}")
            return 0
        stale = stale_exports(source, out)
    except DashboardError as exc:
        print(f"dashboards: {exc}", file=sys.stderr)
        return 1
    if stale:
        print(f"dashboards: exports not current in {out}: {', '.join(stale)} (run `make dashboards`)", file=sys.stderr)
        return 1
    print(f"dashboards: {len(sources(source))} checked, exports current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
