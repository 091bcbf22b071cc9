"""The Celery app of a configuration: its broker, its queue, and delivery settings that
let the ledger's leases make every effect happen once.

Messages are acknowledged after their batch is done (``acks_late``) and given back when
the worker process dies (``reject_on_worker_lost``): a batch is never lost with a worker,
and a batch delivered twice is harmless, because the worker claims its requests in the
ledger first and the engine resumes each from what the ledger says was done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from ..config import Config
from ..errors import UsageError

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["TASK", "broker_url", "check_distributed", "make_app"]

#: the name of the one task: a batch of request ids
TASK = "erasure.run_batch"


def broker_url(config: Config) -> str:
    """The broker URL from ``[erasure] broker``; UsageError when it is not set."""
    if config.host.broker is None:
        raise UsageError('no broker: set [erasure] broker = { env = "ERASURE_BROKER_URL" } '
                         "(amqp://... for RabbitMQ, redis://... for Redis)")
    url = config.host.broker.get_secret_value()
    if not url.startswith(("amqp://", "amqps://", "pyamqp://", "redis://", "rediss://")):
        raise UsageError("erasure.broker: not a RabbitMQ (amqp://) or Redis (redis://) URL")
    return url


def check_distributed(config: Config) -> None:
    """UsageError with one line unless the configuration can run distributed: a broker,
    and a PostgreSQL ledger (every worker on every host must share it)."""
    broker_url(config)
    try:
        backend = make_url(config.host.ledger_url()).get_backend_name()
    except Exception:
        backend = "?"
    if backend != "postgresql":
        raise UsageError("distributed work needs a PostgreSQL ledger ([erasure] ledger = "
                         "postgresql+psycopg://...): workers on several hosts share it")


def make_app(config: Config) -> Celery:
    """The Celery app for ``config`` with the batch task registered."""
    from celery import Celery

    from .tasks import register

    url = broker_url(config)
    app = Celery("erasure", broker=url, set_as_current=False)
    options = {}
    if url.startswith(("redis://", "rediss://")):
        # Redis gives an unacknowledged message back only after this long; a batch still
        # running then is claimed by nobody else (its leases are held), so shorter is safe.
        options["visibility_timeout"] = max(60.0, 2 * config.host.lease_seconds)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker holds no batch it is not working
        task_default_queue=config.host.queue,
        task_ignore_result=True,  # the ledger is where results are
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options=options,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    register(app)
    return app
