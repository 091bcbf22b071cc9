"""A fake Zendesk Support API on 127.0.0.1, for tests, the bench and the demo.

The real zenpy talks to it over HTTP. It answers the endpoints the ``zendesk`` connector
calls with Zendesk's response shapes (see :mod:`.store` for the rules it keeps): offset
search capped at 1,000 results (422 past it, which zenpy swallows), the export search with a
cursor, cursor pagination with absolute ``links.next``, job statuses, basic (``email/token``)
and bearer auth. Faults are seeded: a share of requests answered 429 with ``Retry-After`` or
503, and named writes that commit and then answer 503. Every request is counted per route.
"""

from __future__ import annotations

import base64
import json
import random
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from .query import QueryError, parse
from .store import ApiError, Store, not_found

__all__ = ["Faults", "FakeZendesk"]

SEARCH_CAP = 1000
Handler = Callable[["_Call"], tuple[int, Any]]


@dataclass
class Faults:
    """Seeded faults. Ratios are shares of all API requests."""

    rate_limited: float = 0.0
    unavailable: float = 0.0
    retry_after: int = 1
    #: route names ("DELETE /users/{id}") whose next request commits, then answers 503
    after_commit: Counter[str] = field(default_factory=Counter)
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)


@dataclass
class _Call:
    method: str
    route: str
    args: list[str]
    params: dict[str, list[str]]
    body: Any
    base: str
    route_path: str = ""
    #: the body as sent (uploads are files, not JSON)
    raw: bytes = b""
    content_type: str = ""

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.params.get(name)
        return values[0] if values else default

    def ids(self) -> list[int]:
        raw = self.param("ids", "") or ""
        try:
            ids = [int(x) for x in raw.split(",") if x.strip()]
        except ValueError:
            raise ApiError(400, "InvalidValue", "ids must be integers") from None
        if not ids or len(ids) > 100:
            raise ApiError(400, "InvalidValue", "ids must hold 1 to 100 ids")
        return ids


def _cursor(n: int) -> str:
    return base64.urlsafe_b64encode(f"o{n}".encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return int(text[1:])
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "InvalidPaginationParameter", "invalid cursor") from None


def _page(call: _Call, key: str, items: list[Any], limit: int = 100) -> dict[str, Any]:
    """One page of ``items`` under cursor pagination, ``links.next`` absolute."""
    try:
        size = int(call.param("page[size]", "100") or "100")
    except ValueError:
        raise ApiError(400, "InvalidPaginationParameter", "page[size]") from None
    if not 1 <= size <= limit:
        raise ApiError(400, "InvalidPaginationParameter", f"page[size] must be 1..{limit}")
    start = _offset(call.param("page[after]"))
    chunk = items[start:start + size]
    more = start + size < len(items)
    after = _cursor(start + size) if more else None
    nxt = None
    if more:
        kept = {k: v[0] for k, v in call.params.items() if k != "page[after]"}
        query = "&".join(f"{quote(k)}={quote(v)}" for k, v in kept.items())
        nxt = f"{call.base}/{call.route_path}?{query}&page%5Bafter%5D={after}"
    return {key: chunk, "meta": {"has_more": more, "after_cursor": after,
                                 "before_cursor": _cursor(start) if start else None},
            "links": {"next": nxt, "prev": None}}


class FakeZendesk:
    """The fake account behind an HTTP server; ``url`` is its base (no ``/api/v2``)."""

    def __init__(self, *, email: str = "agent@example.com", token: str = "fake-api-token",
                 oauth_token: str | None = None, faults: Faults | None = None) -> None:
        self.store = Store()
        self.faults = faults or Faults()
        self.email, self.token, self.oauth_token = email, token, oauth_token
        #: the role of the API's agent (``/users/me``): only admins delete for good
        self.agent_role = "admin"
        self.counts: Counter[str] = Counter()
        #: faults served, by status ("429", "503")
        self.faults_answered: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        self._install_routes()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeZendesk:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # BaseHTTPRequestHandler's own buffer of header lines (not in its type stubs)
            _headers_buffer: list[bytes]

            def log_message(self, *args: Any) -> None:  # no access log (personal data)
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body leave in one write, undelayed (Nagle + delayed ACK
                # would add 40 ms to every request)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, headers = fake.handle(self.command, self.path, raw,
                                                    dict(self.headers.items()))
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self._headers_buffer.append(b"\r\n")
                self.wfile.write(b"".join(self._headers_buffer) + data)
                self._headers_buffer = []

            do_GET = do_PUT = do_POST = do_DELETE = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True,
                                        name="fake-zendesk")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeZendesk:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def requests(self) -> int:
        """API requests answered so far (faults included)."""
        return sum(self.counts.values())

    # dispatch ----------------------------------------------------------------------------

    def handle(self, method: str, target: str, raw: bytes, headers: dict[str, str]
               ) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(target)
        path = parts.path
        if not path.startswith("/api/v2/"):
            return 404, {"error": "InvalidEndpoint", "description": "Not found"}, {}
        path = path[len("/api/v2/"):]
        path = path[:-5] if path.endswith(".json") else path
        host = next((v for k, v in headers.items() if k.lower() == "host"), "127.0.0.1")
        found = next(((name, fn, m) for verb, pattern, name, fn in self._routes
                      if verb == method and (m := pattern.fullmatch(path))), None)
        if found is None:
            return 404, {"error": "InvalidEndpoint", "description": "Not found"}, {}
        name, fn, m = found
        with self._count_lock:
            self.counts[name] += 1
        if not self._authorised(headers):
            return 401, {"error": "Couldn't authenticate you"}, {}
        with self.store.lock:
            fault = self._fault()
            if fault is not None:
                self.faults_answered[str(fault[0])] += 1
                return fault
            try:
                body = json.loads(raw) if raw and name != "POST /uploads" else None
            except ValueError:
                return 400, {"error": "InvalidJSON"}, {}
            kind = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
            call = _Call(method, name, list(m.groups()), parse_qs(parts.query), body,
                         f"http://{host}/api/v2", path + ".json", raw, kind)
            try:
                status, out = fn(call)
            except ApiError as exc:
                return exc.status, exc.body, {}
            if self.faults.after_commit[name] > 0:
                self.faults.after_commit[name] -= 1
                self.faults_answered["503"] += 1
                return 503, {"error": "ServiceUnavailable"}, {"Retry-After": "1"}
            return status, out, {}

    def _authorised(self, headers: dict[str, str]) -> bool:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if auth.startswith("Bearer ") and self.oauth_token:
            return auth[7:] == self.oauth_token
        if auth.startswith("Basic "):
            try:
                user, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return False
            return user == f"{self.email}/token" and secret == self.token
        return False

    def _fault(self) -> tuple[int, Any, dict[str, str]] | None:
        f = self.faults
        draw = f._rng.random()
        if draw < f.rate_limited:
            return 429, {"error": "TooManyRequests"}, {"Retry-After": str(f.retry_after)}
        if draw < f.rate_limited + f.unavailable:
            return 503, {"error": "ServiceUnavailable"}, {}
        return None

    def _route(self, verb: str, template: str, fn: Handler) -> None:
        pattern = re.compile(re.sub(r"\\\{\w+\\\}", r"([^/]+)", re.escape(template)))
        self._routes.append((verb, pattern, f"{verb} /{template}", fn))

    def _install_routes(self) -> None:
        r = self._route
        # more specific routes first (show_many before {id})
        r("GET", "users/show_many", self._users_show_many)
        r("GET", "users/{id}/identities", self._identities)
        r("POST", "users/{id}/identities", self._add_identity)
        r("PUT", "users/{id}/identities/{iid}/make_primary", self._make_primary)
        r("DELETE", "users/{id}/identities/{iid}", self._delete_identity)
        r("GET", "users/{id}/tickets/{role}", self._user_tickets)
        r("PUT", "users/{id}/tags", self._user_tags)
        r("GET", "users/me", lambda c: (200, {"user": {
            "id": 1, "name": "Erasure agent", "email": self.email, "role": self.agent_role,
            "active": True}}))
        r("GET", "users/{id}", self._user)
        r("PUT", "users/{id}", self._update_user)
        r("DELETE", "users/{id}", self._delete_user)
        r("GET", "deleted_users", self._deleted_users)
        r("GET", "deleted_users/{id}", self._deleted_user)
        r("DELETE", "deleted_users/{id}", self._purge_user)
        r("GET", "search/export", self._export_search)
        r("GET", "search", self._search)
        r("POST", "uploads", self._upload)
        r("GET", "tickets/show_many", self._tickets_show_many)
        r("DELETE", "tickets/destroy_many", self._destroy_many)
        r("GET", "tickets/{id}/comments", self._comments)
        r("PUT", "tickets/{id}/comments/{cid}/redact", self._old_redact)
        r("GET", "tickets/{id}", self._ticket)
        r("PUT", "tickets/{id}", self._update_ticket)
        r("PUT", "comment_redactions/{cid}", self._redact)
        r("GET", "deleted_tickets", self._deleted_tickets)
        r("DELETE", "deleted_tickets/destroy_many", self._purge_many)
        r("GET", "job_statuses/show_many", self._jobs_show_many)
        r("GET", "job_statuses/{id}", self._job)
        r("GET", "user_fields", lambda c: (200, {"user_fields": self.store.user_fields}))
        r("GET", "ticket_fields", lambda c: (200, {"ticket_fields": self.store.ticket_fields}))

    # handlers ----------------------------------------------------------------------------

    @staticmethod
    def _int(value: str) -> int:
        try:
            return int(value)
        except ValueError:
            raise not_found() from None

    def _user(self, c: _Call) -> tuple[int, Any]:
        uid = self._int(c.args[0])
        if uid not in self.store.users:
            raise not_found()
        return 200, {"user": self.store.user_json(uid, c.base)}

    def _users_show_many(self, c: _Call) -> tuple[int, Any]:
        users = [self.store.user_json(u, c.base) for u in c.ids() if u in self.store.users]
        return 200, {"users": users}

    def _update_user(self, c: _Call) -> tuple[int, Any]:
        uid = self._int(c.args[0])
        changes = (c.body or {}).get("user")
        if not isinstance(changes, dict):
            raise ApiError(400, "InvalidValue", "user object expected")
        self.store.update_user(uid, changes)
        return 200, {"user": self.store.user_json(uid, c.base)}

    def _user_tags(self, c: _Call) -> tuple[int, Any]:
        tags = (c.body or {}).get("tags")
        if not isinstance(tags, list):
            raise ApiError(400, "InvalidValue", "tags list expected")
        return 200, {"tags": self.store.add_tags(self._int(c.args[0]), tags)}

    def _delete_user(self, c: _Call) -> tuple[int, Any]:
        uid = self._int(c.args[0])
        self.store.soft_delete_user(uid)
        return 200, {"user": self.store.user_json(uid, c.base)}

    def _deleted_users(self, c: _Call) -> tuple[int, Any]:
        users = [self.store.user_json(uid, c.base) for uid, u in sorted(self.store.users.items())
                 if u["state"] == "deleted"]
        return 200, _page(c, "deleted_users", users)

    def _deleted_user(self, c: _Call) -> tuple[int, Any]:
        uid = self._int(c.args[0])
        user = self.store.users.get(uid)
        if user is None or user["state"] != "deleted":
            raise not_found()
        return 200, {"deleted_user": self.store.user_json(uid, c.base)}

    def _purge_user(self, c: _Call) -> tuple[int, Any]:
        uid = self._int(c.args[0])
        self.store.purge_user(uid)
        return 200, {"deleted_user": self.store.user_json(uid, c.base)}

    def _identities(self, c: _Call) -> tuple[int, Any]:
        return 200, _page(c, "identities", self.store.user_identities(self._int(c.args[0])))

    def _add_identity(self, c: _Call) -> tuple[int, Any]:
        ident = (c.body or {}).get("identity") or {}
        kind, value = ident.get("type"), ident.get("value")
        if not isinstance(kind, str) or not isinstance(value, str) or not value:
            raise ApiError(400, "InvalidValue", "identity type and value expected")
        return 201, {"identity": self.store.add_identity(self._int(c.args[0]), kind, value)}

    def _make_primary(self, c: _Call) -> tuple[int, Any]:
        idents = self.store.make_primary(self._int(c.args[0]), self._int(c.args[1]))
        return 200, {"identities": idents}

    def _delete_identity(self, c: _Call) -> tuple[int, Any]:
        self.store.delete_identity(self._int(c.args[0]), self._int(c.args[1]))
        return 204, None

    def _user_tickets(self, c: _Call) -> tuple[int, Any]:
        role = c.args[1]
        if role not in ("requested", "ccd", "assigned"):
            raise not_found()
        ids = self.store.user_tickets(self._int(c.args[0]), role)
        return 200, _page(c, "tickets", [self.store.ticket_json(t, c.base) for t in ids])

    def _results(self, c: _Call, hits: list[tuple[str, int]]) -> list[dict[str, Any]]:
        out = []
        index = self.store.searched()
        for kind, ident in hits:
            item = (index.user_json(ident, c.base) if kind == "user"
                    else index.ticket_json(ident, c.base))
            out.append(item | {"result_type": kind})
        return out

    def _query(self, c: _Call) -> Any:
        try:
            return parse(c.param("query", "") or "")
        except QueryError:
            raise ApiError(400, "invalid", "Invalid search: the query is empty") from None

    def _search(self, c: _Call) -> tuple[int, Any]:
        q = self._query(c)
        try:
            page = int(c.param("page", "1") or "1")
            per_page = int(c.param("per_page", "100") or "100")
        except ValueError:
            raise ApiError(400, "invalid", "page and per_page are numbers") from None
        per_page = max(1, min(per_page, 100))
        if page < 1 or page * per_page > SEARCH_CAP:
            raise ApiError(422, "invalid", "Invalid search: Requested response size was "
                                           "greater than Search Response Limits")
        hits = self.store.searched().search(q)
        chunk = hits[(page - 1) * per_page:page * per_page]
        query = quote(c.param("query") or "")
        nxt = None
        if page * per_page < len(hits):
            nxt = f"{c.base}/search.json?page={page + 1}&per_page={per_page}&query={query}"
        prev = (f"{c.base}/search.json?page={page - 1}&per_page={per_page}&query={query}"
                if page > 1 else None)
        return 200, {"results": self._results(c, chunk), "facets": None,
                     "next_page": nxt, "previous_page": prev, "count": len(hits)}

    def _export_search(self, c: _Call) -> tuple[int, Any]:
        q = self._query(c)
        kind = c.param("filter[type]")
        if kind not in ("ticket", "user", "organization", "group"):
            raise ApiError(400, "InvalidPaginationParameter",
                           "filter[type] is required for the export search")
        q.type = kind
        body = _page(c, "results", self._results(c, self.store.searched().search(q)),
                     limit=1000)
        body["facets"] = None
        return 200, body

    def _ticket(self, c: _Call) -> tuple[int, Any]:
        tid = self._int(c.args[0])
        self.store.visible_ticket(tid)
        return 200, {"ticket": self.store.ticket_json(tid, c.base)}

    def _update_ticket(self, c: _Call) -> tuple[int, Any]:
        tid = self._int(c.args[0])
        changes = (c.body or {}).get("ticket")
        if not isinstance(changes, dict):
            raise ApiError(400, "InvalidValue", "ticket object expected")
        self.store.update_ticket(tid, changes)
        return 200, {"ticket": self.store.ticket_json(tid, c.base)}

    def _upload(self, c: _Call) -> tuple[int, Any]:
        name = c.param("filename")
        if not name:
            raise ApiError(400, "InvalidValue", "filename is required")
        upload = self.store.upload(name, c.content_type or "application/binary", c.raw,
                                   c.param("token"))
        return 201, {"upload": upload}

    def _tickets_show_many(self, c: _Call) -> tuple[int, Any]:
        tickets = [self.store.ticket_json(t, c.base) for t in c.ids()
                   if t in self.store.tickets and self.store.tickets[t]["state"] == "live"]
        return 200, {"tickets": tickets}

    def _comments(self, c: _Call) -> tuple[int, Any]:
        tid = self._int(c.args[0])
        self.store.visible_ticket(tid)
        return 200, _page(c, "comments", [dict(x) for x in self.store.comments[tid]])

    def _old_redact(self, c: _Call) -> tuple[int, Any]:
        text = (c.body or {}).get("text")
        comment = self.store.old_redact(self._int(c.args[0]), self._int(c.args[1]),
                                        text if isinstance(text, str) else "")
        return 200, {"comment": comment}

    def _redact(self, c: _Call) -> tuple[int, Any]:
        body = c.body or {}
        tid = body.get("ticket_id")
        html = body.get("html_body")
        urls = body.get("external_attachment_urls") or []
        if not isinstance(tid, int) or (html is None and not urls):
            raise ApiError(400, "InvalidValue", "ticket_id and html_body or "
                                                "external_attachment_urls expected")
        comment = self.store.redact(self._int(c.args[0]), tid, html, urls)
        return 200, {"comment": comment}

    def _job_answer(self, c: _Call, action: str) -> tuple[int, Any]:
        job = self.store.submit(action, c.ids())
        return 200, {"job_status": job.json(c.base)}

    def _destroy_many(self, c: _Call) -> tuple[int, Any]:
        return self._job_answer(c, "delete")

    def _purge_many(self, c: _Call) -> tuple[int, Any]:
        return self._job_answer(c, "purge")

    def _deleted_tickets(self, c: _Call) -> tuple[int, Any]:
        return 200, _page(c, "deleted_tickets", self.store.deleted_tickets())

    def _job(self, c: _Call) -> tuple[int, Any]:
        return 200, {"job_status": self.store.poll_job(c.args[0]).json(c.base)}

    def _jobs_show_many(self, c: _Call) -> tuple[int, Any]:
        raw = [x for x in (c.param("ids", "") or "").split(",") if x]
        jobs = [self.store.poll_job(j).json(c.base) for j in raw if j in self.store.jobs]
        return 200, {"job_statuses": jobs}
