"""Shared test setup. The tests folder is on sys.path so tests can import the small fake tools."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
