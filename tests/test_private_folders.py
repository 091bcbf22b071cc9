"""erasure closes its own folders (0700) and files (0600), and never a folder it shares with
others: a state or ledger folder placed in /tmp once left /tmp at 0700, and every other
user and service of the machine (a database server's temporary tables among them) could no
longer write there."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

from erasure import RequestType
from erasure.orchestrator import Orchestrator, RequestSpec


def _erase_one(orch: Orchestrator) -> None:
    orch.systems["crm"].connector().seed({"c/1": ("contact", {"email": "bob@example.org"})})
    orch.run(only=[orch.submit(RequestSpec(RequestType.ERASURE,
                                           (("email", "bob@example.org"),), verified=True))])
    assert orch.systems["crm"].connector().count() == 0


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_shared_sticky_folder_as_the_state_folder_stays_open_to_everyone(
        make_orch: Callable[..., Orchestrator], tmp_path: Path) -> None:
    shared = tmp_path / "tmp"  # as /tmp is: world-writable, sticky
    shared.mkdir()
    shared.chmod(0o1777)
    _erase_one(make_orch({"erasure": {"state_dir": str(shared)},
                          "systems": {"crm": {"connector": "memory", "store": "shared-st"}}}))
    assert _mode(shared) == 0o1777
    made = list(shared.rglob("*"))
    assert any(p.name == "ledger.db" for p in made)
    for p in made:  # what erasure put there is its own alone
        assert _mode(p) == (0o700 if p.is_dir() else 0o600), (p.name, oct(_mode(p)))


def test_the_folder_a_sqlite_ledger_is_put_in_is_left_as_the_operator_made_it(
        make_orch: Callable[..., Orchestrator], tmp_path: Path) -> None:
    data = tmp_path / "data"  # a folder of the operator's, shared with others
    data.mkdir()
    data.chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)  # as an earlier version left the state folder: closed
    orch = make_orch({"erasure": {"state_dir": str(state),
                                  "ledger": f"sqlite:///{data / 'ledger.db'}"},
                      "systems": {"crm": {"connector": "memory", "store": "shared-db"}}})
    _erase_one(orch)
    assert _mode(data) == 0o755
    assert _mode(data / "ledger.db") == 0o600
    assert _mode(state) == 0o700
