"""``python -m zdmkit.writer``: see :mod:`zdmkit.writer.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
