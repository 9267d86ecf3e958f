"""``docs/benchmarks.md`` is shared by the benchmarks: each one owns a section between two markers
and rewrites only that section, so that running one benchmark keeps the others' numbers."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import subprocess
from pathlib import Path

HEADER = "# Benchmarks\n\nEach section is written by the benchmark it names, and states the machine it ran on.\n"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- section {name}: written by bench/{name}.py -->", f"<!-- end of section {name} -->"


def replace_section(path: Path, name: str, body: str, *, order: tuple[str, ...] = ()) -> None:
    """Put ``body`` into the section ``name`` of ``path``; the other sections stay as they are.

    A file without markers (written before sections existed) is replaced by the header and this
    section. New sections go in ``order`` when given, else at the end."""
    start, end = _markers(name)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if "<!-- section " not in text:
        text = HEADER
    block = f"{start}\n{body.strip()}\n{end}\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    found = pattern.search(text)
    text = pattern.sub(lambda _: block, text, count=1) if found else _insert(text, name, block, order)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def replace_data(path: Path, name: str, data: object) -> None:
    """Put ``data`` under the key ``name`` of the JSON file ``path``; the other keys stay."""
    old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    old = old if isinstance(old, dict) else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**old, name: data}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _insert(text: str, name: str, block: str, order: tuple[str, ...]) -> str:
    if name in order:
        for later in order[order.index(name) + 1 :]:
            marker = _markers(later)[0]
            if marker in text:
                i = text.index(marker)
                return text[:i] + block + "\n" + text[i:]
    return text.rstrip("\n") + "\n\n" + block


def machine() -> dict[str, object]:
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "([^"]+)"', java)
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "java": match.group(1) if match else "unknown",
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def relative_args(args, leave: tuple[str, ...] = ()) -> dict[str, object]:
    """A benchmark's arguments for its data, with paths inside the project relative to it."""
    root = f"{Path(__file__).resolve().parents[1]}/"
    return {k: v.replace(root, "") if isinstance(v, str) else v for k, v in vars(args).items() if k not in leave}


SECTIONS = ("playbook_bench", "proxy_bench", "roll_bench", "migration_bench")
