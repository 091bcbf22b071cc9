"""Scale-out on Celery: `erasure worker` processes batches that `erasure run --distributed`
sends through a broker (RabbitMQ or Redis), all on one PostgreSQL ledger.

- :mod:`.app`: the Celery app of a configuration (broker, queue, acks late)
- :mod:`.work`: what a worker does with one batch (claim, the runner's ``run_batch``) and
  what the sender does (pick due requests, send batches, wait until they are done)
- :mod:`.tasks`: the Celery task, a thin shell around :func:`.work.work_batch`
- :mod:`.beat`: each worker process's heartbeat in the ledger (live, gone, stopped)

Celery is imported only here, and only by the commands that need it.
"""
