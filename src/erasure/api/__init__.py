"""The HTTP API for ticketing workflows (``erasure serve``; docs/api.md).

- :mod:`.schemas`: the bodies (OpenDSR-shaped requests, statuses)
- :mod:`.tokens`: bearer tokens, stored as hashes
- :mod:`.service`: what each route does, over the orchestrator (no HTTP)
- :mod:`.app`: the FastAPI routes; :mod:`.middleware`: the body limit and the access log
- :mod:`.server`: uvicorn with the runner threads

Only ``erasure serve`` imports :mod:`.app`, :mod:`.middleware` and :mod:`.server` (FastAPI,
Starlette, uvicorn).
"""

__all__: list[str] = []
