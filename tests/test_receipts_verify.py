"""Receipts that a third party can check (issue 10, item 3), through the real command line.

An export is edited the ways an interested party would edit it (a flag set, a receipt
deleted, two swapped, the last ones cut off, a head forged) and must fail, with one line
and exit 1, both in ``erasure receipts verify`` and in the 50-line verifier of
docs/receipts.md, which only knows the public key and the documented format.
"""

from __future__ import annotations

import ast
import base64
import copy
import hashlib
import json
import re
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clihelpers import (
    describe,
    error_lines,
    ledger_path,
    memory_system,
    run_cli,
    run_many,
    seed,
    write_config,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from erasure.receipts import canonical

DOC = Path(__file__).parent.parent / "docs" / "receipts.md"
HEAD = re.compile(r"^chain head: (\d+) ([0-9a-f]{64})$", re.M)
CSV_HEADER = "type,email,phone,customer_id,user_id,name,ip,ticket,verified\n"


@dataclass
class Chain:
    """A ledger of 12 receipts written by two runs, and what was exported and printed."""

    folder: Path
    config: Path
    key: str
    full: dict[str, Any]  # the export after both runs (receipts 1-12)
    old: dict[str, Any]  # the export after the first run (receipts 1-8)
    heads: list[tuple[int, str]]  # the head lines the two runs printed
    subset: dict[str, Any]  # export --request of a request of the second run
    subset_request: str


def _import_and_run(folder: Path, config: Path, names: list[str], tag: str) -> tuple[int, str]:
    csv = folder / f"{tag}.csv"
    csv.write_text(CSV_HEADER + "".join(f"erasure,{n}@example.com,,,,,,{tag}-{n},yes\n"
                                        for n in names), encoding="utf-8")
    proc = run_cli("request", "import", str(csv), config=config)
    assert proc.returncode == 0, describe(proc)
    proc = run_cli("run", config=config)
    assert proc.returncode == 0, describe(proc)
    found = HEAD.findall(proc.stderr)
    assert len(found) == 1, describe(proc)  # one line, after every run
    return int(found[0][0]), found[0][1]


def _export(config: Path, out: Path, *args: str) -> dict[str, Any]:
    proc = run_cli("receipts", "export", "-o", str(out), *args, config=config)
    assert proc.returncode == 0, describe(proc)
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    folder = tmp_path_factory.mktemp("chain")
    people = [f"p{n}" for n in range(6)]
    paths = {s: folder / f"{s}.json" for s in ("crm", "helpdesk")}
    for system, path in paths.items():
        seed(path, {f"{system}/{p}": ("contact", {"email": f"{p}@example.com"}) for p in people})
    config = write_config(folder, {s: memory_system(p) for s, p in paths.items()})
    first = _import_and_run(folder, config, people[:4], "A")
    old = _export(config, folder / "old.json")
    second = _import_and_run(folder, config, people[4:], "B")
    full = _export(config, folder / "full.json")
    rid = full["receipts"][-1]["body"]["request"]
    subset = _export(config, folder / "subset.json", "--request", rid)
    key = run_cli("keys", "show-public", config=config).stdout.strip()
    return Chain(folder, config, key, full, old, [first, second], subset, rid)


# the edits ------------------------------------------------------------------------------

def _resign_head(data: dict[str, Any], sign: Callable[[bytes], bytes] | None = None) -> None:
    """Make the head match the (cut) receipts: its hash is right, its signature is the old
    one, or one by ``sign`` (another key)."""
    head = data["head"]
    head["body"].update(count=len(data["receipts"]), last=data["receipts"][-1]["hash"])
    head["hash"] = hashlib.sha256(canonical(head["body"])).hexdigest()
    if sign is not None:
        head["signature"] = base64.b64encode(sign(head["hash"].encode())).decode()


def _edit(data: dict[str, Any], how: str) -> dict[str, Any]:
    d = copy.deepcopy(data)
    r = d["receipts"]
    if how == "full_chain flag, middle receipt deleted":
        d["full_chain"] = False
        del r[5]
    elif how == "middle receipt deleted":
        del r[5]
    elif how == "two receipts swapped":
        r[4], r[5] = r[5], r[4]
    elif how == "first receipt deleted":
        del r[0]
    elif how == "last 5 receipts cut off":
        del r[-5:]
    elif how == "last 5 cut off, head removed":
        del r[-5:]
        d["head"] = None
    elif how == "last 5 cut off, head forged":
        del r[-5:]
        _resign_head(d)
    elif how == "last 5 cut off, head signed by another key":
        del r[-5:]
        _resign_head(d, Ed25519PrivateKey.generate().sign)
    elif how == "outer seq edited":  # beside the body, so no hash covers it
        r[3]["seq"] = 5
    elif how == "receipt body edited, full_chain flag":
        d["full_chain"] = False
        r[3]["body"]["outcome"] = "completed" if r[3]["body"]["outcome"] != "completed" else "x"
    else:
        raise AssertionError(how)
    return d


EDITS = {
    "full_chain flag, middle receipt deleted": "found where receipt 6 belongs",
    "middle receipt deleted": "found where receipt 6 belongs",
    "two receipts swapped": "found where receipt 5 belongs",
    "first receipt deleted": "found where receipt 1 belongs",
    "last 5 receipts cut off": "receipts 8-12 were cut off its end",
    "last 5 cut off, head removed": "no signed chain head",
    "last 5 cut off, head forged": "chain head: signature does not verify",
    "last 5 cut off, head signed by another key": "chain head: signature does not verify",
    "receipt body edited, full_chain flag": "receipt 4: body does not match its hash",
    "outer seq edited": "receipt 4: sequence number differs from its body",
}


def _write(folder: Path, name: str, data: dict[str, Any]) -> Path:
    path = folder / (re.sub(r"\W+", "-", name) + ".json")
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def assert_fails(proc: Any, needle: str) -> None:
    """Exit 1 and exactly one line on stderr, naming the problem; nothing on stdout."""
    assert proc.returncode == 1, describe(proc)
    lines = error_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("FAILED: "), describe(proc)
    assert needle in lines[0], describe(proc)
    assert "OK" not in proc.stdout, describe(proc)


# the command line -----------------------------------------------------------------------

def test_a_real_export_verifies_and_ends_at_the_printed_head(chain: Chain) -> None:
    assert chain.heads[0][0] == 8 and chain.heads[1][0] == 12
    assert [len(chain.old["receipts"]), len(chain.full["receipts"])] == [8, 12]
    assert chain.full["head"]["body"]["count"] == 12
    assert chain.full["head"]["body"]["last"] == chain.heads[1][1]
    assert chain.full["receipts"][-1]["hash"] == chain.heads[1][1]
    assert "full_chain" not in chain.full
    path = _write(chain.folder, "ok", chain.full)
    proc = run_cli("receipts", "verify", "--file", str(path), "--public-key", chain.key)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.startswith(f"OK: 12 receipts, signatures, chain and signed head "
                                  f"verified (chain head: 12 {chain.heads[1][1]})")


@pytest.mark.parametrize("how", list(EDITS))
def test_an_edited_export_fails_in_one_line(chain: Chain, how: str) -> None:
    path = _write(chain.folder, how, _edit(chain.full, how))
    proc = run_cli("receipts", "verify", "--file", str(path), "--public-key", chain.key)
    assert_fails(proc, EDITS[how])


def test_expect_head_checks_against_a_published_head(chain: Chain) -> None:
    (h8, h12) = (chain.heads[0][1], chain.heads[1][1])
    full = _write(chain.folder, "full", chain.full)
    old = _write(chain.folder, "old", chain.old)  # a whole chain, cut back to run 1's head
    other = hashlib.sha256(b"another chain").hexdigest()
    verify = ["receipts", "verify", "--public-key", chain.key, "--file"]
    same, older, cut_back, unknown, old_alone = run_many(
        [*verify, str(full), "--expect-head", h12],
        [*verify, str(full), "--expect-head", h8],
        [*verify, str(old), "--expect-head", h12],
        [*verify, str(full), "--expect-head", other],
        [*verify, str(old)])
    assert same.returncode == 0 and "matches --expect-head" in same.stdout, describe(same)
    assert older.returncode == 0, describe(older)
    assert "the expected head is receipt 8; 4 receipts were written after it" in older.stdout
    assert_fails(cut_back, f"--expect-head {h12[:16]}... is not a receipt of this chain")
    assert_fails(unknown, "is not a receipt of this chain")
    # what --expect-head is for: cut back to an older head, an export is whole by itself
    assert old_alone.returncode == 0, describe(old_alone)
    line, wrong_count, garbage = run_many(  # the printed line itself may be pasted
        [*verify, str(full), "--expect-head", f"chain head: 12 {h12}"],
        [*verify, str(full), "--expect-head", f"11 {h12}"],
        [*verify, str(full), "--expect-head", h12[:40]])
    assert line.returncode == 0 and "matches --expect-head" in line.stdout, describe(line)
    assert_fails(wrong_count, "is receipt 12 of this chain, not 11")
    assert garbage.returncode == 2 and len(error_lines(garbage)) == 1, describe(garbage)
    assert error_lines(garbage)[0].startswith("error: --expect-head: give the 64-hex-digit")


def test_the_ledger_verifies_itself_against_a_published_head(chain: Chain) -> None:
    ok, expected, wrong = run_many(
        ["receipts", "verify"], ["receipts", "verify", "--expect-head", chain.heads[1][1]],
        ["receipts", "verify", "--expect-head", "0" * 64], config=chain.config)
    assert ok.returncode == 0 and "OK: 12 receipts" in ok.stdout, describe(ok)
    assert expected.returncode == 0, describe(expected)
    assert_fails(wrong, "is not a receipt of this chain")


def test_a_filtered_export_verifies_only_as_a_subset_and_says_so(chain: Chain) -> None:
    receipts = chain.subset["receipts"]
    assert {r["body"]["request"] for r in receipts} == {chain.subset_request}
    assert [r["seq"] for r in receipts] == [11, 12]
    path = _write(chain.folder, "subset", chain.subset)
    flagged = copy.deepcopy(chain.subset)
    flagged["full_chain"] = True  # nothing in the file changes what is checked
    edited = copy.deepcopy(chain.subset)
    edited["receipts"][0]["body"]["counts"]["found"] += 1
    verify = ["receipts", "verify", "--public-key", chain.key, "--file"]
    as_chain, as_subset, with_flag, edited_subset, with_head = run_many(
        [*verify, str(path)], [*verify, str(path), "--subset"],
        [*verify, str(_write(chain.folder, "flagged", flagged))],
        [*verify, str(_write(chain.folder, "edited-subset", edited)), "--subset"],
        [*verify, str(path), "--subset", "--expect-head", chain.heads[1][1]])
    assert_fails(as_chain, "receipt 11: found where receipt 1 belongs")
    assert as_subset.returncode == 0, describe(as_subset)
    assert "2 receipts, each hash and signature verified; chain completeness NOT checked" \
        in as_subset.stdout
    assert_fails(with_flag, "receipt 11: found where receipt 1 belongs")
    assert_fails(edited_subset, "receipt 11: body does not match its hash")
    assert with_head.returncode == 2, describe(with_head)
    assert error_lines(with_head) == [
        "error: --expect-head checks a whole chain; it cannot be used with --subset"]


def test_receipts_from_before_heads_get_one_at_the_next_run(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"crm": memory_system(tmp_path / "crm.json")})
    seed(tmp_path / "crm.json", {"c/1": ("contact", {"email": "a@example.com"})})
    proc = run_cli("erase", "--email", "a@example.com", "--verified", config=config)
    assert proc.returncode == 0, describe(proc)
    (count, last), = [(int(c), h) for c, h in HEAD.findall(proc.stderr)]
    assert count == 1
    db = sqlite3.connect(ledger_path(config))
    with db:
        db.execute("DELETE FROM receipt_heads")  # a ledger from before heads
    db.close()
    assert_fails(run_cli("receipts", "verify", config=config), "no signed chain head")
    proc = run_cli("run", config=config)  # nothing to do, but the chain's end is signed
    assert proc.returncode == 0, describe(proc)
    assert HEAD.findall(proc.stderr) == [("1", last)]
    proc = run_cli("receipts", "verify", "--expect-head", last, config=config)
    assert proc.returncode == 0, describe(proc)


# the verifier of docs/receipts.md --------------------------------------------------------

def doc_verifier() -> str:
    """The one ```python block of docs/receipts.md."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_the_documented_verifier_is_short_and_needs_only_cryptography() -> None:
    code = doc_verifier()
    assert len(code.splitlines()) <= 56  # README.md says "a 56-line verifier"
    imported = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"cryptography"}


def test_the_documented_verifier_checks_a_real_export(chain: Chain, tmp_path: Path) -> None:
    script = tmp_path / "verify_receipts.py"
    script.write_text(doc_verifier(), encoding="utf-8")

    def run(data: dict[str, Any], name: str, *head: str) -> Any:
        import subprocess

        path = _write(tmp_path, name, data)
        # -I: isolated, so it cannot lean on this project (only site-packages' cryptography)
        return subprocess.run([sys.executable, "-I", str(script), str(path), chain.key, *head],
                              capture_output=True, text=True, timeout=60)

    ok = run(chain.full, "full")
    assert ok.returncode == 0 and ok.stdout.startswith("OK: 12 receipts"), describe(ok)
    assert run(chain.full, "full", chain.heads[0][1]).returncode == 0
    for how in EDITS:
        proc = run(_edit(chain.full, how), how)
        assert proc.returncode != 0 and proc.stderr.startswith("FAILED: "), (how, describe(proc))
    cut_back = run(chain.old, "old", chain.heads[1][1])
    assert cut_back.returncode != 0, describe(cut_back)
    assert "expected head is not in this chain" in cut_back.stderr


# in process: a head with every batch ----------------------------------------------------

def test_every_batch_of_receipts_writes_its_head(make_orch: Callable[..., Any]) -> None:
    from erasure import RequestType
    from erasure.heads import ledger_export, verify_export
    from erasure.keys import public_key_from_text
    from erasure.ledger import receipt_heads_t
    from erasure.orchestrator import RequestSpec

    orch = make_orch({"erasure": {"batch_size": 1},
                      "systems": {"crm": {"connector": "memory"},
                                  "desk": {"connector": "memory"}}})
    for n in range(3):
        orch.submit(RequestSpec(RequestType.ERASURE, (("email", f"p{n}@example.com"),),
                                verified=True))
    summary = orch.run()
    with orch.ledger.engine.connect() as conn:
        counts = [row.count for row in conn.execute(
            receipt_heads_t.select().order_by(receipt_heads_t.c.count))]
    assert counts == [2, 4, 6]  # one batch, one request, two receipts, one head
    data = ledger_export(orch.ledger)
    assert summary.head == (6, data["receipts"][-1]["hash"])
    verdict = verify_export(data, public_key_from_text(orch.keys.public_text))
    assert verdict.ok, verdict.problems


def test_two_runners_on_postgresql_leave_one_chain_with_its_heads(make_orch, monkeypatch,
                                                                  pg_database) -> None:
    """Batches of two runners interleave on a shared PostgreSQL ledger: every head is the
    end of the chain at its batch (written under the chain's lock), the last the end."""
    import threading

    from erasure import RequestType
    from erasure.heads import ledger_export, verify_export
    from erasure.keys import public_key_from_text
    from erasure.ledger import receipt_heads_t
    from erasure.orchestrator import RequestSpec

    monkeypatch.setenv("T_LEDGER_URL", pg_database.url)
    config = {"erasure": {"ledger": {"env": "T_LEDGER_URL"}, "batch_size": 3},
              "systems": {"crm": {"connector": "memory", "store": "pg-heads"}}}
    first, second = make_orch(config), make_orch(config)
    first.submit_many([RequestSpec(RequestType.ERASURE, (("email", f"u{i}@example.com"),),
                                   verified=True) for i in range(20)])
    threads = [threading.Thread(target=o.run) for o in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = ledger_export(first.ledger)
    hashes = [r["hash"] for r in data["receipts"]]
    with first.ledger.engine.connect() as conn:
        heads = [(r.count, r.last) for r in conn.execute(
            receipt_heads_t.select().order_by(receipt_heads_t.c.count))]
    assert len(hashes) == 20 and heads[-1] == (20, hashes[-1])
    assert all(hashes[count - 1] == last for count, last in heads)
    verdict = verify_export(data, public_key_from_text(first.keys.public_text))
    assert verdict.ok, verdict.problems
    first.close()
    second.close()


# malformed input: one line and a non-zero exit from both verifiers, never a traceback ----

def _malformed(chain: Chain) -> dict[str, bytes]:
    def edited(change: Callable[[dict[str, Any]], Any]) -> bytes:
        d = copy.deepcopy(chain.full)
        change(d)
        return json.dumps(d).encode()

    def receipt(n: int, **fields: Any) -> Callable[[dict[str, Any]], Any]:
        return lambda d: d["receipts"][n].update(fields)

    def head_body(**fields: Any) -> Callable[[dict[str, Any]], Any]:
        return lambda d: d["head"]["body"].update(fields)

    return {
        "empty file": b"",
        "not JSON": b'{"receipts": [',
        "not UTF-8": b"\xff\xfe\x00{}",
        "a JSON list": b"[]",
        "receipts not a list": b'{"receipts": "all of them"}',
        "receipts of numbers": b'{"receipts": [1, 2, 3]}',
        "nested too deep": b"[" * 100_000 + b"]" * 100_000,
        "receipt without body": edited(lambda d: d["receipts"][0].pop("body")),
        "receipt body a list": edited(receipt(0, body=[1, 2])),
        "hash a number": edited(receipt(1, hash=12345)),
        "signature not base64": edited(receipt(2, signature="not base64 !!")),
        "signature a list": edited(receipt(2, signature=["x"])),
        "outer seq a string": edited(receipt(0, seq="1")),
        "head a string": edited(lambda d: d.update(head="chain head: 12 abc")),
        "head without body": edited(lambda d: d["head"].pop("body")),
        "head count missing": edited(lambda d: d["head"]["body"].pop("count")),
        "head count true": edited(head_body(count=True)),
    }


def test_a_malformed_file_fails_in_one_line_in_both_verifiers(chain: Chain,
                                                              tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "verify_receipts.py"
    script.write_text(doc_verifier(), encoding="utf-8")
    cases = _malformed(chain)
    paths = {}
    for n, (name, data) in enumerate(cases.items()):
        paths[name] = tmp_path / f"malformed-{n}.json"
        paths[name].write_bytes(data)
    tool = run_many(*[["receipts", "verify", "--file", str(p), "--public-key", chain.key]
                      for p in paths.values()])
    for name, proc in zip(cases, tool, strict=True):
        assert proc.returncode in (1, 2) and len(error_lines(proc)) == 1, (name, describe(proc))
        assert "Traceback" not in proc.stderr and "OK" not in proc.stdout, name
    bad_args = [[str(paths["not JSON"])], [str(tmp_path / "missing.json"), chain.key],
                [str(paths["empty file"]), "not a key"]]
    for name, args in [*((n, [str(p), chain.key]) for n, p in paths.items()),
                       *((f"arguments {a}", a) for a in bad_args)]:
        proc = subprocess.run([sys.executable, "-I", str(script), *args],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 and proc.stdout == "", (name, describe(proc))
        assert len(proc.stderr.splitlines()) == 1, (name, describe(proc))
        assert proc.stderr.startswith("FAILED: "), (name, describe(proc))


def test_both_verifiers_read_an_expected_head_the_same_way(chain: Chain,
                                                            tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "verify_receipts.py"
    script.write_text(doc_verifier(), encoding="utf-8")
    path = _write(tmp_path, "full", chain.full)
    (n8, h8), (n12, h12) = chain.heads
    heads = {f"chain head: {n12} {h12}": True, f"{n8} {h8.upper()}": True, h8: True,
             f"{n8 + 1} {h8}": False, f"0 {h8}": False, "0" * 64: False, h8[:40]: False}
    for head, ok in heads.items():
        docs = subprocess.run([sys.executable, "-I", str(script), str(path), chain.key, head],
                              capture_output=True, text=True, timeout=60)
        tool = run_cli("receipts", "verify", "--file", str(path), "--public-key", chain.key,
                       "--expect-head", head)
        assert (docs.returncode == 0, tool.returncode == 0) == (ok, ok), (head, describe(docs),
                                                                         describe(tool))
