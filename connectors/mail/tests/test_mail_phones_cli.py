"""An erasure by phone number through the command line, with `[erasure]
default_phone_region`: the messages holding the number as people write it go, the receipt
says so, and a neighbour with a longer number (and an unquoted "From " line) stays byte for
byte."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from mail_fixtures import message


def _cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ERASURE_CONFIG", "ERASURE_BLOCK_PLUGINS")}
    env.update(COLUMNS="250", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "erasure.cli", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_erasing_a_phone_written_in_national_form(tmp_path: Path) -> None:
    stamp = b"From x@y Thu Dec  3 10:00:00 2026\n"
    national = stamp + message("desk@company.test", "a@company.test", "callback",
                               "Please ring Bob on 0113 000 0001.\n") + b"\n"
    bracketed = stamp + message("desk@company.test", "a@company.test", "sms",
                                "Sent to +44 (0)113-000-0001\n") + b"\n"
    carol = stamp + message("carol@example.org", "a@company.test", "carol's",
                            "From now on my number is +44 113 000 00012.\n") + b"\n"
    box = tmp_path / "archive.mbox"
    box.write_bytes(national + carol + bracketed)
    config = tmp_path / "erasure.toml"
    config.write_text(
        f'[erasure]\nstate_dir = "{tmp_path / "state"}"\ndefault_phone_region = "GB"\n'
        'strong_identifiers = ["email", "phone"]\n\n'
        f'[systems.archive]\nconnector = "mail"\nbackend = "mbox"\npath = "{box}"\n'
        'search_body = true\n', encoding="utf-8")
    proc = _cli("erase", "--phone", "+44 113 000 0001", "--verified", config=config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert box.read_bytes() == carol, "a written form is left, or the neighbour changed"
    (rid,) = set(re.findall(r"\br-[0-9a-f]{16}\b", proc.stdout))
    shown = _cli("receipts", "show", rid, "--json", config=config)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    (receipt,) = doc["receipts"]
    body = receipt["body"]
    assert body["outcome"] == "completed" and body["counts"]["done"] == 2
    assert body["counts"]["residue"] == 0 and body["verification"]["ok"]
    text = json.dumps(doc)
    assert "0113" not in text and "1130000001" not in text, "the number is on a receipt"
