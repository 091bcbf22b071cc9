"""Access packages do not outlive their use (issue 10, item 2): they go a configured time
after they are made, and at once when an erasure of the same person completes; the receipt
holds the package's hash; a package can be encrypted with a password shown once."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
import pyzipper
from clihelpers import CLI, cli_env, memory_system, run_cli, seed, write_config

from erasure import RequestType
from erasure.orchestrator import RequestSpec

ALICE = (("email", "alice@example.com"),)
LOOKALIKE = (("email", "jimalice@example.com"),)


@pytest.fixture
def crm(make_orch):
    def make(**host):
        orch = make_orch({"erasure": host, "systems": {"crm": {"connector": "memory"}}})
        orch.systems["crm"].connector().seed({
            "c/1": ("contact", {"email": "alice@example.com", "note": "alice's"}),
            "c/2": ("contact", {"email": "jimalice@example.com", "note": "jim's"}),
        })
        return orch
    return make


def access(orch, identifiers=ALICE) -> tuple[str, Path]:
    rid = orch.submit(RequestSpec(RequestType.ACCESS, identifiers, verified=True))
    orch.run(only=[rid])
    return rid, orch.config.host.exports() / f"{rid}.zip"


def erase(orch, identifiers) -> str:
    rid = orch.submit(RequestSpec(RequestType.ERASURE, identifiers, verified=True))
    orch.run(only=[rid])
    return rid


def test_the_receipt_holds_the_package_hash_and_the_ledger_when_it_goes(crm) -> None:
    orch = crm()
    rid, path = access(orch)
    receipt = orch.ledger.receipts(rid)[0]["body"]
    assert receipt["package_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    (row,) = orch.ledger.live_packages()
    assert row["request_id"] == rid and row["file"] == path.name
    days = (row["expires_at"] - row["made_at"]).total_seconds() / 86400
    assert days == pytest.approx(30)  # the default


def test_a_package_goes_when_its_time_is_up(crm) -> None:
    orch = crm(package_days=2)
    rid, path = access(orch)
    orch.clock = lambda: time.time() + 1.9 * 86400
    orch.run()
    assert path.exists()  # not yet
    orch.clock = lambda: time.time() + 2.01 * 86400
    orch.run()
    assert not path.exists()
    (row,) = orch.ledger.packages([rid])
    assert row["deleted_why"] == "expired" and row["subjects"] is None


def test_a_delivered_package_goes_at_once_when_the_person_is_erased_and_only_then(
        crm) -> None:
    orch = crm()
    rid, path = access(orch)
    other, other_path = access(orch, LOOKALIKE)
    for r in (rid, other):
        orch.deliver_package(r, io.BytesIO())
    erase(orch, (("email", "nobody@example.com"),))  # someone else: nothing goes
    assert path.exists() and other_path.exists()
    erase(orch, ALICE)
    assert not path.exists()
    assert other_path.exists()  # jimalice is not alice
    assert [r["request_id"] for r in orch.ledger.live_packages()] == [other]
    (row,) = orch.ledger.packages([rid])
    assert row["deleted_why"] == "subject erased"


def test_an_undelivered_package_waits_for_its_delivery_after_the_person_is_erased(
        tmp_path: Path) -> None:
    """Issue 26: an erasure completing after an access request must not delete the
    access package before anyone received it; it goes once delivered."""
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"email": "alice@example.com", "note": "alice's"})})
    config = write_config(tmp_path, {"crm": memory_system(crm)})
    access = run_cli("export", "--email", "alice@example.com", "--verified", config=config)
    assert access.returncode == 0, access.stderr
    (rid,) = re.findall(r"Request (r-\w+)", access.stdout)
    erased = run_cli("erase", "--email", "alice@example.com", "--verified", config=config)
    assert erased.returncode == 0, erased.stderr
    package = tmp_path / "state" / "exports" / f"{rid}.zip"
    assert package.exists()
    status = run_cli("status", config=config)
    assert re.search(rf"{rid}\.zip .*delivery \(`erasure package get {rid}`\); the "
                     r"person is erased", status.stdout), status.stdout
    got = tmp_path / "given.zip"
    fetched = run_cli("package", "get", rid, "-o", str(got), config=config)
    assert fetched.returncode == 0, fetched.stderr
    assert "deleted now" in fetched.stderr
    with zipfile.ZipFile(got) as zf:
        assert b"alice's" in zf.read("crm.json")
    assert not package.exists()
    assert "Packages" not in run_cli("status", config=config).stdout
    again = run_cli("package", "get", rid, "-o", str(tmp_path / "again.zip"), config=config)
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "delivered after erasure" in again.stderr


def test_a_package_fetched_to_standard_output_is_the_file(tmp_path: Path) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"email": "alice@example.com"})})
    config = write_config(tmp_path, {"crm": memory_system(crm)})
    access = run_cli("export", "--email", "alice@example.com", "--verified", config=config)
    (rid,) = re.findall(r"Request (r-\w+)", access.stdout)
    package = tmp_path / "state" / "exports" / f"{rid}.zip"
    assert f"package of {rid}: {package} (deliver it with `erasure package get {rid}`)" \
        in access.stdout, access.stdout
    cmd = [*CLI, "package", "get", rid, "-c", str(config)]
    proc = subprocess.run(cmd, capture_output=True, env=cli_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (tmp_path / "state" / "exports" / f"{rid}.zip").read_bytes()
    status = run_cli("status", config=config)
    assert re.search(r"expiry \(delivered \d{4}-", status.stdout), status.stdout
    missing = run_cli("package", "get", "r-nosuch", "-o", str(tmp_path / "x"), config=config)
    assert missing.returncode == 2 and "r-nosuch" in missing.stderr


def test_an_encrypted_package_opens_only_with_its_password(crm) -> None:
    orch = crm(package_password=True)
    rid = orch.submit(RequestSpec(RequestType.ACCESS, ALICE, verified=True))
    summary = orch.run(only=[rid])
    password = summary.package_passwords[rid]
    path = orch.config.host.exports() / f"{rid}.zip"
    with zipfile.ZipFile(path) as zf, pytest.raises(RuntimeError, match="password"):
        zf.read("crm.json")
    with pyzipper.AESZipFile(path) as zf:
        zf.setpassword(password.encode())
        assert b"alice@example.com" in zf.read("crm.json")
    assert b"alice@example.com" not in path.read_bytes()
    # stored nowhere: not in the ledger file, not on the receipt
    ledger_bytes = b"".join(p.read_bytes() for p in path.parents[1].glob("ledger.db*"))
    assert password.encode() not in ledger_bytes
    assert password not in str(orch.ledger.receipts(rid))


def test_the_cli_shows_the_password_once_and_status_shows_when_packages_go(
        tmp_path: Path) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"email": "alice@example.com"})})
    config = write_config(tmp_path, {"crm": memory_system(crm)},
                          host={"package_password": True})
    proc = run_cli("export", "--email", "alice@example.com", "--verified", config=config)
    assert proc.returncode == 0, proc.stderr
    (password,) = re.findall(r"password (\S+) \(shown once", proc.stdout)
    status = run_cli("status", "--all", config=config)
    assert "Packages" in status.stdout and password not in status.stdout + status.stderr
    assert re.search(r"r-\w+\.zip +\d{4}-\d\d-\d\d \d\d:\d\d +\d{4}-\d\d-\d\d", status.stdout)


def test_a_package_written_to_a_file_is_its_owners_alone(tmp_path: Path) -> None:
    """`package get -o FILE` writes 0600 whatever the umask (README: the files the tool
    writes are 0600), and closes a file that was there before it writes the zip."""
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"email": "alice@example.com"})})
    config = write_config(tmp_path, {"crm": memory_system(crm)})
    access = run_cli("export", "--email", "alice@example.com", "--verified", config=config)
    (rid,) = re.findall(r"Request (r-\w+)", access.stdout)
    new, old = tmp_path / "new.zip", tmp_path / "old.zip"
    old.write_bytes(b"")
    old.chmod(0o644)
    cmd = [*CLI, "package", "get", rid, "-o", str(new), "-c", str(config)]
    got = subprocess.run(["sh", "-c", 'umask 022; exec "$@"', "sh", *cmd],
                         capture_output=True, text=True, env=cli_env(), timeout=60)
    assert got.returncode == 0, got.stderr
    assert new.stat().st_mode & 0o777 == 0o600
    assert new.read_bytes() == (tmp_path / "state" / "exports" / f"{rid}.zip").read_bytes()
    again = run_cli("package", "get", rid, "-o", str(old), config=config)
    assert again.returncode == 0, again.stderr
    assert old.stat().st_mode & 0o777 == 0o600 and old.read_bytes() == new.read_bytes()
