"""The lab story: the scenario's inventory, and the story's order.

The story runs in file order (``pytest tests/integration/lab``): each module leaves the
migration in the phase the next one starts from. Its shared pieces are in ../labkit.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# labkit and integration_env live in tests/integration, which pytest does not put on the path
# when only this story runs.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from labkit import INVENTORY, Lab, load_lab


def pytest_collection_modifyitems(items):
    """Keep the story's order: files by name, tests as written."""
    items.sort(key=lambda item: (Path(str(item.fspath)).name,))


@pytest.fixture(scope="session")
def lab() -> Lab:
    return load_lab(INVENTORY)
