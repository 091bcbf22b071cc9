"""A processor's signed confirmation, applied: what the ticketing API's endpoint will call
(``POST`` of an ``erasure.confirmation`` body to a system's confirmation URL)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from erasure import UsageError

__all__ = ["confirm_signed"]


def confirm_signed(orchestrator: Any, system: str, headers: Mapping[str, str], body: bytes,
                   *, now: float | None = None) -> list[str]:
    """Verify a confirmation posted for ``system`` and record it for every request it
    names (as ``erasure confirm REQUEST SYSTEM --reference`` would); returns the requests
    confirmed now (one confirmed before, or ended, is left as it is: a processor may post
    twice). Raises :class:`~erasure_notify.signing.InvalidSignature` (nothing recorded)
    for a bad signature, a stale timestamp, or a request the named message did not carry;
    ``UsageError`` for a system that is not a notify system."""
    systems = orchestrator.systems
    if system not in systems or systems[system].config.connector != "notify":
        raise UsageError(f"no notify system {system!r} in the configuration")
    conf = systems[system].connector().confirmation(headers, body, now=now)
    done = []
    for request in conf.requests:
        row = orchestrator.get_request(request)
        stages = {t.system: t.stage for t in orchestrator.ledger.tasks_for([request])} \
            if row.status != "done" else {}
        if stages.get(system) != "awaiting_confirmation":
            continue
        orchestrator.confirm(request, system, conf.reference)
        done.append(request)
    return done

