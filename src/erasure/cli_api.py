"""The ``erasure serve`` and ``erasure tokens`` commands: the HTTP API (docs/api.md).

FastAPI and uvicorn are imported by ``serve`` only, so no other command pays for them.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import Annotated

import typer

from .cli_common import ConfigOpt, _errors, _fail, _orchestrator, app, out
from .tables import compact_table

__all__ = ["serve", "tokens_app"]

tokens_app = typer.Typer(no_args_is_help=True, help="Bearer tokens of the HTTP API.")
app.add_typer(tokens_app, name="tokens")

_DURATION = re.compile(r"^(\d{1,5})([hdw])$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: "
                                                  "\\[erasure.api] host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default: "
                                             "\\[erasure.api] port, 8000).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the HTTP API (docs/api.md), with a runner that processes due requests as
    `erasure run` does. Put a TLS-terminating proxy in front of it."""
    from .api.server import serve as run_server

    with _errors():
        run_server(config, host, port)


@tokens_app.command("create")
def tokens_create(
    scope: Annotated[list[str], typer.Option(
        "--scope", help="submit, read, package or admin (repeatable).")],
    expires: Annotated[str | None, typer.Option(
        help="Lifetime: N followed by h, d or w (e.g. 90d). Default: no expiry.")] = None,
    callback_secret_env: Annotated[str | None, typer.Option(
        help="Sign the status callbacks of requests submitted with this token with the "
             "secret in this environment variable (read when sending).")] = None,
    callback_secret: Annotated[bool, typer.Option(
        "--callback-secret", help="Make a secret that signs the status callbacks of "
        "requests submitted with this token; printed once (kept encrypted).")] = False,
    config: ConfigOpt = None,
) -> None:
    """Make a token; it is printed once, alone on the last line (only its hash is kept)."""
    from .api.tokens import SCOPES, create_token
    from .ledger import utcnow

    bad = [s for s in scope if s not in SCOPES]
    if bad:
        _fail(f"--scope must be one of {', '.join(SCOPES)} (not {bad[0]!r})")
    expires_at = None
    if expires is not None:
        m = _DURATION.match(expires)
        if m is None or int(m.group(1)) == 0:
            _fail("--expires takes N followed by h, d or w (e.g. 90d)")
            return
        unit = {"h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
        expires_at = utcnow() + timedelta(**{unit: int(m.group(1))})
    if callback_secret and callback_secret_env:
        _fail("--callback-secret makes a secret; --callback-secret-env names one: not both")
    if callback_secret_env is not None and not _ENV_NAME.match(callback_secret_env):
        _fail("--callback-secret-env takes an environment variable's name (A-Z, 0-9, _)")
    with _orchestrator(config, connectors=False) as orch, _errors():
        ref, made = None, None
        if callback_secret_env is not None:
            ref = f"env:{callback_secret_env}"
        elif callback_secret:
            made = "cbs_" + secrets.token_urlsafe(32)
            ref = orch.callback_secrets().seal(made)
        token_id, token = create_token(orch.ledger, scope, expires_at, ref)
        if made is not None:
            out.print(f"callback signing secret of token {token_id}; shown once, give it "
                      "to the receiver:", highlight=False)
            out.print(made, highlight=False, soft_wrap=True)
        out.print(f"token {token_id} ({' '.join(dict.fromkeys(scope))}"
                  + (f", expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "")
                  + "); shown once, keep it secret:", highlight=False)
        out.print(token, highlight=False, soft_wrap=True)


@tokens_app.command("list")
def tokens_list(config: ConfigOpt = None) -> None:
    """Tokens with their scopes, expiry and whether they were revoked (never the token)."""
    with _orchestrator(config, connectors=False) as orch, _errors():
        table = compact_table("API tokens")
        for col in ("id", "scopes", "created (UTC)", "expires (UTC)", "revoked (UTC)",
                    "callbacks signed with"):
            table.add_column(col, no_wrap=True)
        for t in orch.ledger.tokens():
            ref = t.callback_secret or ""
            signer = (f"env {ref[4:]}" if ref.startswith("env:")
                      else "its own secret" if ref else "config callback_secret")
            table.add_row(t.id, " ".join(t.scopes), f"{t.created_at:%Y-%m-%d %H:%M}",
                          f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "-",
                          f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "-",
                          signer)
        out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str, config: ConfigOpt = None) -> None:
    """Revoke a token by its id (`erasure tokens list`); it is refused from now on."""
    with _orchestrator(config, connectors=False) as orch, _errors():
        if not orch.ledger.revoke_token(token_id):
            _fail(f"no active token {token_id!r}")
        out.print(f"token {token_id} revoked")
