"""Unit tests of the pure domain: make ``from factories import ...`` work without packages or pythonpath."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
