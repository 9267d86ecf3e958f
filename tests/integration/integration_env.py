"""What every integration test module shares: a missing endpoint skips the tests and says which,
unless ``ZDMKIT_REQUIRE_INTEGRATION=1`` (set by the Molecule scenarios) makes it a failure, so
that a scenario can never pass by skipping its checks."""

from __future__ import annotations

import os

import pytest

REQUIRED = os.environ.get("ZDMKIT_REQUIRE_INTEGRATION") == "1"


def need(condition: bool, message: str) -> None:
    """Go on when condition holds; otherwise skip (or fail, when required) with message."""
    if condition:
        return
    if REQUIRED:
        pytest.fail(f"{message} (ZDMKIT_REQUIRE_INTEGRATION=1)", pytrace=False)
    pytest.skip(message)


def need_module(condition: bool, message: str) -> None:
    """The same at import time, for a whole test module."""
    if condition:
        return
    if REQUIRED:
        raise RuntimeError(f"{message} (ZDMKIT_REQUIRE_INTEGRATION=1)")
    pytest.skip(message, allow_module_level=True)
