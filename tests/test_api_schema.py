"""schemathesis against the OpenAPI document of a real ``erasure serve`` (uvicorn on
127.0.0.1): every operation, with generated valid and invalid bodies, parameters, headers and
methods, and submissions followed through the document's links, answers no 5xx, no stack
trace and nothing its document does not declare (status code, content type, body schema,
Allow header).

The default run tries a few examples per operation; ``ERASURE_API_FUZZ_EXAMPLES=N`` (set by
``make test-long``) tries N.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from apihelpers import start_server
from clihelpers import cli_env, memory_system, seed, write_config

EXAMPLES = int(os.environ.get("ERASURE_API_FUZZ_EXAMPLES", "5"))
#: ``make test`` replays one fixed seed, so a default run is the same run every time;
#: ``make test-long`` sets ``ERASURE_API_FUZZ_SEED=random`` to explore new examples.
SEED = os.environ.get("ERASURE_API_FUZZ_SEED", "20261207")

#: Left out, with the reason: an identifier's syntax (an email address as email-validator
#: reads it, a phone number by its country's numbering plan, an IP address) cannot be said in
#: JSON Schema, so a body the document allows may still be refused 422 naming the field.
EXCLUDED_CHECKS = "positive_data_acceptance"


def _admin_token(config: Path) -> str:
    from erasure.api.tokens import create_token
    from erasure.ledger import Ledger

    ledger = Ledger(f"sqlite:///{config.parent / 'state' / 'ledger.db'}")
    try:
        return create_token(ledger, ["admin"], None)[1]
    finally:
        ledger.close()


def test_every_operation_answers_as_its_openapi_document_says(tmp_path: Path) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, {"contact/1": ("contact", {"email": "jane@example.org"})})
    config = write_config(tmp_path, {"crm": memory_system(crm)},
                          host={"api": {"max_body_bytes": 8192, "poll_seconds": 0.5}})
    server = start_server(config, env=cli_env())
    try:
        token = _admin_token(config)
        st = Path(sys.executable).with_name("schemathesis")
        proc = subprocess.run(
            [str(st), "run", f"{server.url}/openapi.json", "--checks", "all",
             "--exclude-checks", EXCLUDED_CHECKS, "--max-examples", str(EXAMPLES),
             # one worker: on CPython 3.11.7 schemathesis' generator threads can call
             # ast.parse at once, which raises "AST constructor recursion depth mismatch"
             # inside the tool (CPython gh-106905), a failure of the tester, not the API
             "--workers", "1", "--request-timeout", "30", "--no-color",
             *([] if SEED == "random" else ["--seed", SEED]),
             "-H", f"Authorization: Bearer {token}"],
            capture_output=True, text=True, cwd=tmp_path, timeout=1800,
            env={**cli_env(), "NO_COLOR": "1"})
    finally:
        log = server.stop()
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout and "Stateful" in proc.stdout, proc.stdout[-3000:]
    # no 5xx was answered, and nothing failed inside the server either
    assert "Traceback" not in log and " failed: " not in log, log[-3000:]
