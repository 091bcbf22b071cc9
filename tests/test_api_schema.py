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
import random
import subprocess
import sys
from pathlib import Path

from apihelpers import start_server
from clihelpers import cli_env, memory_system, seed, write_config

EXAMPLES = int(os.environ.get("ERASURE_API_FUZZ_EXAMPLES", "5"))
#: ``make test`` replays one fixed seed, so a default run is the same run every time;
#: ``make test-long`` sets ``ERASURE_API_FUZZ_SEED=random`` to explore new examples.
#: A random seed is drawn here rather than by schemathesis so every failure message names it
#: and the failing run can be replayed with ``ERASURE_API_FUZZ_SEED=<seed>``.
_SEED_SETTING = os.environ.get("ERASURE_API_FUZZ_SEED", "20261207")
SEED = str(random.SystemRandom().randrange(2**31)) if _SEED_SETTING == "random" else _SEED_SETTING

#: Left out, with the reason: an identifier's syntax (an email address as email-validator
#: reads it, a phone number by its country's numbering plan, an IP address) cannot be said in
#: JSON Schema, so a body the document allows may still be refused 422 naming the field.
EXCLUDED_CHECKS = "positive_data_acceptance"

#: A body over the server's limit (``max_body_bytes``, 8192 here) is refused 413 before it is
#: read, as POST /v1/requests declares; schemathesis counts only 400/401/403/404/405/406/409/
#: 415/422/428/429 as refusing invalid data, so a generated invalid body that is also too
#: large (50 identities of 320 characters, each escaped to six bytes) failed a random run as
#: "Schema-violating request accepted" (ST201). 413 is a refusal too.
SCHEMATHESIS_CONFIG = """\
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422",
                     "428", "429", "5xx"]
"""


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
        (tmp_path / "schemathesis.toml").write_text(SCHEMATHESIS_CONFIG)
        proc = subprocess.run(
            [str(st), "--config-file", str(tmp_path / "schemathesis.toml"),
             "run", f"{server.url}/openapi.json", "--checks", "all",
             "--exclude-checks", EXCLUDED_CHECKS, "--max-examples", str(EXAMPLES),
             # one worker: on CPython 3.11.7 schemathesis' generator threads can call
             # ast.parse at once, which raises "AST constructor recursion depth mismatch"
             # inside the tool (CPython gh-106905), a failure of the tester, not the API
             "--workers", "1", "--request-timeout", "30", "--no-color",
             "--seed", SEED,
             "-H", f"Authorization: Bearer {token}"],
            capture_output=True, text=True, cwd=tmp_path, timeout=1800,
            env={**cli_env(), "NO_COLOR": "1"})
    finally:
        log = server.stop()
    # kept whole in pytest's temporary folder (its last three runs), since a random run's
    # failure is only seen once: schemathesis' report and the server's log
    (tmp_path / "schemathesis.txt").write_text(proc.stdout + proc.stderr)
    (tmp_path / "server.log").write_text(log)
    replay = (f"replay with ERASURE_API_FUZZ_SEED={SEED} ERASURE_API_FUZZ_EXAMPLES={EXAMPLES}"
              f" (whole output in {tmp_path})\n")
    print(replay + proc.stdout)
    assert proc.returncode == 0, (replay + proc.stdout[-8000:] + proc.stderr[-2000:]
                                  + log[-2000:])
    assert "passed" in proc.stdout and "Stateful" in proc.stdout, replay + proc.stdout[-3000:]
    # no 5xx was answered, and nothing failed inside the server either
    assert "Traceback" not in log and " failed: " not in log, replay + log[-3000:]
