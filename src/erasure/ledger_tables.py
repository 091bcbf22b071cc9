"""The ledger's tables (SQLAlchemy Core): the whole schema in one place.

Columns that hold personal data are encrypted under the request's own key and NULL once the
request ends (see shredding.py); everything else holds none.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Double,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "api_requests_t", "api_tokens_t", "callbacks_t", "webhook_signatures_t",
    "ledger_meta_t", "metadata", "outbox_t", "packages_t", "receipt_heads_t", "receipts_t",
    "request_keys_t", "requests_t", "review_decisions_t", "sweeps_t", "system_limits_t",
    "task_events_t", "tasks_t", "work_batches_t", "worker_beats_t",
]

metadata = MetaData()

requests_t = Table(
    "requests",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("ticket", String(200)),
    Column("type", String(20), nullable=False),
    Column("status", String(20), nullable=False, index=True),  # open|awaiting_approval|done
    Column("outcome", String(30)),
    Column("verified", Boolean, nullable=False, default=False),
    Column("override", Text),
    # how the identity was checked when it was after the request was recorded
    # (`erasure request verify`): JSON {method, by, at}, references only, no personal data
    Column("verified_how", Text),
    Column("received_at", DateTime, nullable=False),
    Column("due_at", DateTime, nullable=False),
    Column("extension_reason", Text),
    Column("created_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("approved_at", DateTime),
    # keyed hash of the plan shown for approval: what the approver saw
    Column("plan_hash", String(64)),
    Column("identifiers", LargeBinary),  # encrypted; NULL once finished
    Column("subject_digest", String(64)),
    Column("lease_owner", String(120)),
    Column("lease_until", Float),
    # epoch seconds before which no task of the request is due (a deferral); NULL: due now
    Column("not_before", Float),
    # keyed hash of (type, ticket, identifiers): the same ticket's request recorded twice
    # (an import run again) is one request
    Column("dedupe_key", String(64)),
    Index("requests_dedupe", "dedupe_key", unique=True),
)

tasks_t = Table(
    "tasks",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("system", String(63), primary_key=True),
    # pending -> found -> acting -> acted -> done
    Column("stage", String(20), nullable=False),
    Column("outcome", String(30)),
    Column("state", LargeBinary),  # encrypted findings and outcomes; NULL once finished
    Column("summary", Text),  # JSON without personal data: counts, attempts, errors
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    Column("not_before", Float),  # deferred until (epoch seconds); NULL: due
    Column("updated_at", DateTime),
)

task_events_t = Table(
    "task_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(40), nullable=False, index=True),
    Column("system", String(63), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("old", String(30), nullable=False),
    Column("new", String(30), nullable=False),
    Column("cause", Text, nullable=False),  # classified, no personal data
)

outbox_t = Table(
    "outbox",
    metadata,
    Column("id", String(36), primary_key=True),  # the event id hooks deduplicate on
    Column("hook", String(60), nullable=False),
    Column("payload", Text, nullable=False),  # JSON, no personal data
    Column("created_at", DateTime, nullable=False),
    Column("delivered_at", DateTime, index=True),
)

# The key of each open request, wrapped under the key of an epoch (see shredding.py); the
# row goes when the request ends, and the epoch rotates so that no copy left in the
# database files can be unwrapped again.
request_keys_t = Table(
    "request_keys",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("epoch", Integer, nullable=False, index=True),
    Column("wrapped", LargeBinary, nullable=False),
)

# An operator's decisions on items left for review (`erasure review R --include/--exclude`):
# the item as its keyed hash (the receipt's, never its reference), who decided (a
# reference) and when; a reason is sealed with the request (freetext.seal_reason). The
# engine acts on included items like strong ones and leaves excluded ones untouched.
review_decisions_t = Table(
    "review_decisions",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("system", String(63), primary_key=True),
    Column("item", String(64), primary_key=True),  # keys.digest(system, ref)
    Column("decision", String(10), nullable=False),  # include | exclude
    Column("decided_by", String(200), nullable=False),
    Column("decided_at", DateTime, nullable=False),
    Column("reason", Text),  # sealed: keyed hash + text under the request's key
)

# Access and portability packages while they exist: when each goes, and keyed hashes of
# its subject's strong identifiers (an erasure of the same person removes it once it was
# delivered, or when it expires); the hashes are cleared when the file is deleted.
packages_t = Table(
    "packages",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("file", String(200), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("made_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
    Column("subjects", Text),  # JSON list of keyed hashes; NULL once deleted
    Column("deleted_at", DateTime),
    Column("deleted_why", String(40)),
    # when `erasure package get` first gave it out; NULL: nobody has received it yet
    Column("delivered_at", DateTime),
    # when an erasure of its subject completed: the file goes as soon as it is delivered
    Column("subject_erased_at", DateTime),
)

# Small named values of the ledger itself: the key epoch, and whether it must rotate.
ledger_meta_t = Table(
    "ledger_meta",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", Text, nullable=False),
)

receipts_t = Table(
    "receipts",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(40), nullable=False, index=True),
    Column("system", String(63), nullable=False),
    Column("body", Text, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("signature", String(120), nullable=False),
    # one receipt per request and system, whatever two runners believe
    Index("receipts_request_system", "request_id", "system", unique=True),
)

# Signed chain heads (see heads.py): one per batch of receipts, in the batch's transaction,
# so that an export cut short no longer matches the last head. A new table: ledgers made
# before it get it from create_all, and their next run signs a head over their receipts.
receipt_heads_t = Table(
    "receipt_heads",
    metadata,
    Column("count", Integer, primary_key=True, autoincrement=False),  # receipts covered
    Column("last", String(64), nullable=False),  # hash of receipt ``count``
    Column("body", Text, nullable=False),  # canonical JSON, as hashed
    Column("hash", String(64), nullable=False),
    Column("signature", String(120), nullable=False),
)

# One row per system the retention sweep has run in: its lease (one sweep of a system at a
# time) and what `erasure status` shows (see erasure.sweep).
sweeps_t = Table(
    "sweeps",
    metadata,
    Column("system", String(63), primary_key=True),
    Column("lease_owner", String(120)),
    Column("lease_until", Float),
    Column("last_swept_at", DateTime),
    Column("last_outcome", String(30)),
    Column("last_deleted", Integer),
    Column("oldest_at", DateTime),  # the oldest item left after the last sweep
    Column("receipt_seq", Integer),
)

# The HTTP API's bearer tokens (see erasure.api): only a hash of each secret is kept; the
# token is shown once, when it is made.
api_tokens_t = Table(
    "api_tokens",
    metadata,
    Column("id", String(20), primary_key=True),  # public part of the token ("tk...")
    Column("secret_hash", String(64), nullable=False),  # sha256 hex of the secret part
    Column("scopes", String(100), nullable=False),  # space-separated
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime),
    Column("revoked_at", DateTime),
    # what signs the status callbacks of requests submitted with this token: "env:NAME"
    # (read when sending) or "enc:<Fernet token>" (made by `tokens create`, shown once)
    Column("callback_secret", Text),
)

# What a request submitted through the HTTP API brought besides the request itself: the
# caller's own id for it (idempotency), where to send status callbacks, and whether the
# caller cancelled it. Callback URLs (their query may name someone) are forgotten when the
# request ends, with its identifiers.
api_requests_t = Table(
    "api_requests",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("subject_request_id", String(100)),
    Column("callback_urls", Text),  # JSON list
    Column("cancelled_at", DateTime),
    # what signs its callbacks (as api_tokens.callback_secret); none: [erasure.api]'s
    Column("callback_secret", Text),
    # the Zendesk ticket it came from ("ticket id"): the outcome is posted back there
    Column("zendesk_ticket", String(40)),
    # who submitted it (a token's id, "zendesk") and a keyed hash of what it asked for:
    # a repeat of its subject_request_id or Idempotency-Key is the same request only when
    # both match (else 409), so a key reused for another request never drops it silently
    Column("caller", String(40)),
    Column("fingerprint", String(64)),
)

# Status callbacks to send (the outbox of the HTTP API): one row per event and URL, queued
# by the engine in the transaction of the change it tells of, whichever process ran it, and
# retried with backoff until delivered or out of attempts. The body holds no personal data.
# A ``zendesk:<ticket>`` URL is the outcome note posted back on a Zendesk ticket.
callbacks_t = Table(
    "callbacks",
    metadata,
    Column("id", String(80), primary_key=True),  # event id + url index: at most one row each
    Column("event_id", String(36), nullable=False),
    Column("request_id", String(40), nullable=False, index=True),
    Column("url", Text, nullable=False),  # cut to scheme://host:port/... once done with
    Column("body", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", Float, nullable=False, index=True),
    Column("delivered_at", DateTime, index=True),
    Column("failed_at", DateTime),
    Column("last_error", String(200)),
    Column("secret_ref", Text),  # api_requests.callback_secret when it was queued
)

# Signatures of webhooks received (Zendesk's), kept while their timestamp could still pass
# the freshness check: the same signed call again is a replay and refused.
webhook_signatures_t = Table(
    "webhook_signatures",
    metadata,
    Column("signature", String(100), primary_key=True),
    Column("seen_at", Float, nullable=False, index=True),
)

# Batches of requests sent to distributed workers (`erasure run --distributed`): queued
# until a worker starts one, then running on that worker until it finishes (a batch
# redelivered after its worker died shows the worker that took it over). Request ids only.
work_batches_t = Table(
    "work_batches",
    metadata,
    Column("id", String(64), primary_key=True),  # the message's task id
    Column("requests", Integer, nullable=False),
    Column("enqueued_at", DateTime, nullable=False, index=True),
    Column("worker", String(200)),
    Column("started_at", DateTime),
    Column("finished_at", DateTime, index=True),
    Column("done", Integer),  # requests the worker worked (others held by other runners)
    # the lease owner of the worker process that started it (worker_beats.process): the
    # batch is stalled when that process stops beating. NULL: a worker of an older version
    Column("process", String(120)),
)

# The heartbeat of each process of `erasure worker` that works batches (a pool process):
# written every heartbeat_seconds by a thread of its own, busy or idle, and marked stopped
# when the process ends cleanly. `erasure status` shows a worker whose processes all missed
# three beats as gone, and the batches they held as stalled. Times are epoch seconds (the
# leases' clock) as doubles (MariaDB's FLOAT would round them to two minutes); the names are a
# Celery node name and a lease owner: no personal data.
worker_beats_t = Table(
    "worker_beats",
    metadata,
    Column("process", String(120), primary_key=True),  # its lease owner (leases.new_owner)
    Column("worker", String(200), nullable=False, index=True),  # the Celery node name
    Column("beat_seconds", Double, nullable=False),  # seconds between its beats
    Column("started_at", Double, nullable=False),
    Column("beat_at", Double, nullable=False, index=True),
    Column("stopped_at", Double),
)

# Per-system rate limits shared by every runner and worker on this ledger: the
# theoretical arrival time of the next call (GCRA, a token bucket in one number).
system_limits_t = Table(
    "system_limits",
    metadata,
    Column("system", String(80), primary_key=True),
    Column("tat", Float, nullable=False),
)
