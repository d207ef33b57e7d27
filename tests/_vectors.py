"""Location of the public test vectors (``../shared/vectors`` beside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VECTORS = Path(os.environ.get("DEVATTEST_VECTORS", REPO.parent / "shared" / "vectors")).resolve()
