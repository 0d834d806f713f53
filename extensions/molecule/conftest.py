"""Makes the scenarios' shared helpers importable by name and registers their fixtures and the hooks that fail a run
that checked nothing (tests/strict.py)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE / "shared"), str(HERE.parents[1] / "tests")]

# pylint: disable=wrong-import-position,unused-import
from strict import pytest_collection_modifyitems, pytest_configure, pytest_sessionfinish  # noqa: E402,F401
from testinfra_helpers import loadgen, pool_size  # noqa: E402,F401
