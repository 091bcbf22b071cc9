"""pytest fixtures of the notify connector tests (see notify_fixtures.py)."""

import sys
from pathlib import Path

# the host's CLI helpers (tests/clihelpers.py): these tests drive the real command line
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))

from notify_fixtures import make_orch, smtp_sink, webhook, world  # noqa: E402, F401
