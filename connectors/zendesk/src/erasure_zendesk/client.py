"""The HTTP side: zenpy's authenticated session, URL building and response checks, with
erasure's error classes and none of zenpy's hidden waiting.

zenpy (imported here, when a system is built) would sleep through every 429 for as long as
Retry-After says, retry 5xx inside urllib3, and end a search silently at the 1,000-result
cap. Here a response hook turns 429 into ``TransientError(retry_after)`` before zenpy sees
it, the session's adapters never retry (the host does), and the connector reads raw JSON
pages itself (see :meth:`ZendeskClient.search`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

from erasure import AuthError, ConnectorError, PermanentError, TransientError

from .settings import ZendeskSettings

__all__ = ["SEARCH_CAP", "NotFound", "ZendeskClient", "zendesk_errors"]

#: Zendesk's offset search answers at most this many results for one query
SEARCH_CAP = 1000
# zenpy builds https://<subdomain>.<domain>/api/v2/...; with ``url`` set it builds this
# placeholder, and the session's adapter sends it to the configured base instead.
_PLACEHOLDER_SUB, _PLACEHOLDER_DOMAIN = "erasure", "zendesk.invalid"


class NotFound(PermanentError):
    """404: the record does not exist (or no longer does)."""


class _RateLimited(TransientError):
    pass


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value is not None else 60.0
    except ValueError:
        return 60.0


def _on_response(response: Any, *args: Any, **kwargs: Any) -> Any:
    """Raise on 429 before zenpy's own loop would sleep through Retry-After."""
    if response.status_code == 429:
        raise _RateLimited("zendesk: rate limited (429)",
                           retry_after=_retry_after(response.headers.get("Retry-After")))
    return response


def _classify(status: int, what: str) -> ConnectorError:
    if status in (401, 403):
        return AuthError(f"zendesk: {what}: HTTP {status} (credentials or permission)")
    if status == 404:
        return NotFound(f"zendesk: {what}: not found")
    if status == 409 or status >= 500:
        return TransientError(f"zendesk: {what}: HTTP {status}")
    return PermanentError(f"zendesk: {what}: HTTP {status}")


@contextmanager
def zendesk_errors(what: str) -> Iterator[None]:
    """Turn zenpy's and requests' errors into erasure's, naming only ``what`` and the
    status: response bodies may quote personal data, so they are never passed on."""
    import requests
    from zenpy.lib.exception import APIException, RatelimitBudgetExceeded, ZenpyException

    try:
        yield
    except ConnectorError:
        raise
    except APIException as exc:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", 0) or 0
        raise _classify(status, what) from None
    except requests.HTTPError as exc:
        status = getattr(exc.response, "status_code", 0) or 0
        raise _classify(status, what) from None
    except (requests.ConnectionError, requests.Timeout):
        raise TransientError(f"zendesk: {what}: connection failed or timed out") from None
    except RatelimitBudgetExceeded:
        raise TransientError(f"zendesk: {what}: rate limited", retry_after=60.0) from None
    except (ZenpyException, requests.RequestException, ValueError) as exc:
        raise PermanentError(f"zendesk: {what}: {type(exc).__name__}") from None


class ZendeskClient:
    """Calls of the Support API, each one HTTP request, answering parsed JSON."""

    def __init__(self, settings: ZendeskSettings) -> None:
        import requests
        from requests.adapters import HTTPAdapter
        from zenpy import Zenpy

        self.base = settings.base
        session = requests.Session()
        # no adapter-level retries at all: the host retries, and a write that committed
        # before a 503 must be retried knowingly (the connector reads state first)
        for prefix in ("https://", "http://"):
            session.mount(prefix, HTTPAdapter(max_retries=0))
        if settings.url is not None:
            session.mount(f"https://{_PLACEHOLDER_SUB}.{_PLACEHOLDER_DOMAIN}/",
                          _Rebase(settings.url))
        session.hooks["response"].append(_on_response)
        auth: dict[str, Any] = {}
        if settings.oauth_token is not None:
            auth["oauth_token"] = settings.oauth_token.get_secret_value()
        else:
            assert settings.token is not None
            auth.update(email=settings.email, token=settings.token.get_secret_value())
        sub, domain = ((settings.subdomain, "zendesk.com") if settings.subdomain
                       else (_PLACEHOLDER_SUB, _PLACEHOLDER_DOMAIN))
        with zendesk_errors("connect"):
            self._zenpy = Zenpy(subdomain=sub, domain=domain, session=session,
                                timeout=settings.timeout, disable_cache=True,
                                ratelimit_budget=1, **auth)
        self._api = self._zenpy.users  # any Api object: they share session and config
        self.session = session
        self._origin = urlsplit(self.base)[:2]
        #: requests sent (this client), for the bench and tests
        self.sent = 0

    def close(self) -> None:
        self.session.close()

    # plumbing ---------------------------------------------------------------------------

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The absolute URL of ``path`` (under /api/v2, ``.json`` added) with ``params``
        encoded (zenpy's Url joins parameters as given)."""
        from zenpy.lib.endpoint import Url

        encoded = {quote(str(k), safe="[]"): quote(str(v), safe=",")
                   for k, v in (params or {}).items()}
        return str(self._api._build_url(Url(f"{path}.json", encoded)))

    def _send(self, method: str, url: str, what: str, payload: Any = None) -> Any:
        fn = getattr(self.session, method)
        kwargs: dict[str, Any] = {"timeout": self._api.timeout}
        if payload is not None:
            kwargs["json"] = payload
        with zendesk_errors(what):
            self.sent += 1
            response = self._api._call_api(fn, url, **kwargs)
            if response.status_code == 204 or not response.content:
                return {}
            return response.json()

    def get(self, path: str, what: str, **params: Any) -> Any:
        return self._send("get", self.url(path, params), what)

    def put(self, path: str, what: str, payload: Any) -> Any:
        return self._send("put", self.url(path), what, payload)

    def post(self, path: str, what: str, payload: Any) -> Any:
        return self._send("post", self.url(path), what, payload)

    def delete(self, path: str, what: str, **params: Any) -> Any:
        return self._send("delete", self.url(path, params), what)

    def follow(self, link: str, what: str) -> Any:
        """GET an absolute ``next`` link the API gave, only on the account's own origin
        (credentials never go elsewhere)."""
        parts = urlsplit(link)
        if parts[:2] != self._origin and not (
                parts.netloc.startswith(f"{_PLACEHOLDER_SUB}.")):
            raise PermanentError(f"zendesk: {what}: a next link left the account's origin")
        return self._send("get", link, what)

    def pages(self, path: str, key: str, what: str, **params: Any) -> Iterator[list[Any]]:
        """Every page of a cursor-paginated list, following ``links.next``."""
        body = self.get(path, what, **{"page[size]": 100, **params})
        while True:
            yield list(body.get(key) or [])
            nxt = (body.get("links") or {}).get("next")
            if not (body.get("meta") or {}).get("has_more") or not nxt:
                return
            body = self.follow(nxt, what)

    def search(self, query: str, kind: str, what: str) -> list[dict[str, Any]]:
        """Every result of ``query`` (``kind``: user or ticket). The offset search answers
        1,000 results at most and zenpy then stops without a word; past the cap this goes
        to the export search (cursor, no cap), so the answer is never silently partial."""
        body = self.get("search", what, query=f"type:{kind} {query}", per_page=100)
        count = int(body.get("count") or 0)
        if count > SEARCH_CAP:
            return [r for page in self.pages("search/export", "results", what,
                                             query=query, **{"filter[type]": kind})
                    for r in page]
        results = list(body.get("results") or [])
        while body.get("next_page"):
            body = self.follow(body["next_page"], what)
            results += body.get("results") or []
        if len(results) < count:  # the index moved under us: do not answer partially
            raise TransientError(f"zendesk: {what}: search returned fewer results than "
                                 "it counted")
        return [r for r in results if r.get("result_type", kind) == kind]


def _rebase_adapter() -> type:
    from requests.adapters import HTTPAdapter

    class Rebase(HTTPAdapter):
        """Sends zenpy's placeholder https URLs to the configured base instead."""

        def __init__(self, base: str) -> None:
            super().__init__(max_retries=0)
            self.target = base.rstrip("/")
            self.prefix = f"https://{_PLACEHOLDER_SUB}.{_PLACEHOLDER_DOMAIN}"

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            if request.url.startswith(self.prefix):
                request.url = self.target + request.url[len(self.prefix):]
            return super().send(request, *args, **kwargs)

    return Rebase


def _Rebase(base: str) -> Any:  # noqa: N802 - reads like the class it builds
    return _rebase_adapter()(base)
