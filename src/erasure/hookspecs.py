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


@hookspec
def erasure_receipt_written(receipt: Receipt) -> None:
    """Called after a signed receipt is stored in the ledger.

    Use it to forward receipts (a ticketing system, an audit log). The receipt holds no
    personal data. An exception here is logged and does not undo the receipt.
    """


@hookspec
def erasure_request_finished(request_id: str, ticket: str | None, outcome: str) -> None:
    """Called when a request is finished in every system, before its identifiers are purged.

    ``outcome`` is the worst outcome over its systems (``completed``, ``partial``,
    ``failed``, ``not_covered``, ...). Use it to post the result back to a ticket.
    """
