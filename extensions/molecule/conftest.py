"""Makes the scenarios' shared helpers importable by name and registers their fixtures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "shared"))

from testinfra_helpers import loadgen, pool_size  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
