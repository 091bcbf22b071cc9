"""The whole plugin contract of erasure: every hook a plugin may implement.

A plugin is a module (or object) with functions marked ``@erasure.hookimpl`` whose names
match the specs below. Built-in and third-party plugins are found the same way, through the
``erasure.connectors`` entry-point group::

    [project.entry-points."erasure.connectors"]
    mysystem = "erasure_mysystem.plugin"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .plugins import ConnectorRegistry
    from .receipts import Receipt

PROJECT = "erasure"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def erasure_register_connectors(registry: ConnectorRegistry) -> None:
    """Register connector classes: ``registry.add(MyConnector)``.

    Called once when the plugin host starts. A plugin may register several connectors.
    Registering a name twice is a :class:`~erasure.errors.PluginError`.
    """


# Notification hooks: called from the ledger's outbox after the change they tell of was
# committed, at least once. ``event_id`` is the same on every delivery of one event: a hook
# that must act once (post a ticket comment) deduplicates on it. An exception in a hook is
# logged and does not undo anything.


@hookspec
def erasure_receipt_written(receipt: Receipt, event_id: str) -> None:
    """A signed receipt was stored. The receipt holds no personal data.

    Use it to forward receipts (a ticketing system, an audit log).
    """


@hookspec
def erasure_request_finished(request_id: str, ticket: str | None, outcome: str,
                             event_id: str) -> None:
    """A request ended in every system; its identifiers are purged.

    ``outcome`` is the worst outcome over its systems (``completed``, ``partial``,
    ``failed``, ``not_covered``, ...). Use it to post the result back to a ticket.
    """


@hookspec
def erasure_task_changed(request_id: str, system: str, old: str, new: str, cause: str,
                         event_id: str) -> None:
    """A task moved (or was deferred: ``old == new``). ``cause`` is a classified message
    without personal data ("delete deferred: TransientError: ...", "confirmed").

    Written to the outbox only while some plugin implements this hook.
    """
