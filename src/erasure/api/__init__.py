"""The HTTP API for ticketing workflows (``erasure serve``; docs/api.md).

- :mod:`.schemas`: the bodies (OpenDSR-shaped requests, statuses)
- :mod:`.tokens`: bearer tokens, stored as hashes
- :mod:`.service`: what each route does, over the orchestrator (no HTTP)
- :mod:`.app`: the FastAPI routes; :mod:`.server`: uvicorn with the runner threads

Only ``erasure serve`` imports :mod:`.app` and :mod:`.server` (FastAPI, uvicorn).
"""

__all__: list[str] = []
