"""A local fake of the Salesforce REST API on 127.0.0.1, for the real simple-salesforce.

It serves the endpoints the connector calls, with the real response shapes and errors:
query / queryAll with ``nextRecordsUrl`` pages, SOSL search, describe, composite sobjects
DELETE / PATCH / POST (200 with per-item results matched by position), Bulk API 2.0
ingest jobs (state advances only when the job is read), OAuth userinfo, the JWT bearer
token endpoint and the SOAP password login. Every answer carries ``Sforce-Limit-Info``.

Faults are seeded per endpoint (:meth:`FakeSalesforce.fail`) or at random
(:attr:`FakeSalesforce.fault_rate`): ``limit`` (403 REQUEST_LIMIT_EXCEEDED), ``unavailable``
(503 before the change), ``after_commit`` (the change is applied, then 503) and ``expire``
(the session ends: 401 INVALID_SESSION_ID until a new login).
"""

from __future__ import annotations

import json
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

from .org import ApiError, Org

__all__ = ["FakeSalesforce"]

#: Endpoints that change data: an ``after_commit`` fault applies the change, then fails.
MUTATING = frozenset({"composite_delete", "composite_update", "composite_create",
                      "job_create", "job_upload", "job_close"})
#: What random faults may be: never an expired session (that is not transient).
_RANDOM_KINDS = ("limit", "unavailable", "after_commit")
_URI_LIMIT = 16384


@dataclass
class _Fault:
    endpoint: str  # an endpoint label or "*"
    kind: str
    times: int


class FakeSalesforce:
    """The server: start with ``with FakeSalesforce() as sf:`` (or :meth:`start`/:meth:`stop`).

    - ``url``: the instance URL (``http://127.0.0.1:PORT``) for the connector's settings;
    - ``org``: the data (:class:`~erasure_salesforce.testing.org.Org`) for seeding and checks;
    - ``session_id``: a valid access token for ``auth = "session"``;
    - ``calls``: requests per endpoint label (``search``, ``query``, ``composite_delete``,
      ``job_create``...), for tests and the bench.
    """

    def __init__(self, org: Org | None = None, *, username: str = "integration@example.invalid",
                 password: str = "fake-password", security_token: str = "fake-token",
                 consumer_key: str = "fake-consumer-key", jwt_public_key: str | None = None,
                 fault_seed: int = 0) -> None:
        self.org = org or Org()
        self.username, self.password, self.security_token = username, password, security_token
        self.consumer_key = consumer_key
        self.jwt_public_key = jwt_public_key
        self.sessions: set[str] = set()
        self.session_id = self.new_session()
        self.faults: list[_Fault] = []
        self.fault_rate = 0.0
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(fault_seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: called with the endpoint label after a request's change was applied and before
        #: it is answered (tests: kill the client right there)
        self.after_action: Callable[[str], None] | None = None

    # lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def calls(self) -> Counter[str]:
        return self.org.calls

    def start(self, port: int = 0) -> FakeSalesforce:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="fake-salesforce", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSalesforce:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # sessions and faults -----------------------------------------------------------------

    def new_session(self) -> str:
        token = "00D000000000001!" + secrets.token_urlsafe(24)
        self.sessions.add(token)
        return token

    def expire_sessions(self) -> None:
        """End every session: the next request answers 401 INVALID_SESSION_ID."""
        self.sessions.clear()

    def fail(self, endpoint: str, kind: str, times: int = 1) -> None:
        """Make the next ``times`` requests to ``endpoint`` ("*": any) fail with ``kind``."""
        if kind not in ("limit", "unavailable", "after_commit", "expire"):
            raise ValueError(f"unknown fault {kind}")
        self.faults.append(_Fault(endpoint, kind, times))

    def _fault(self, endpoint: str) -> str | None:
        with self._lock:
            for f in self.faults:
                if f.times > 0 and f.endpoint in ("*", endpoint):
                    f.times -= 1
                    return f.kind
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(_RANDOM_KINDS)
        return None


def _error_response(exc: ApiError) -> tuple[int, dict[str, str], bytes]:
    return exc.status, {"Content-Type": "application/json", **exc.headers}, json.dumps(
        exc.body()).encode()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSalesforce
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, the second waits
    # for the client's delayed ACK (40 ms a request on loopback).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass  # requests hold identifiers in their URLs: never log them

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._serve("PATCH")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, headers, payload = self._route(method, body)
        except ApiError as exc:
            status, headers, payload = _error_response(exc)
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client died waiting (a test killed it): nobody to answer

    def _route(self, method: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if len(self.path) > _URI_LIMIT:
            return 414, {"Content-Type": "text/plain"}, b"URI Too Long"
        parts = urlsplit(self.path)
        path, params = parts.path, parse_qs(parts.query)
        fake = self.fake
        if path.startswith("/services/Soap/u/") and method == "POST":
            if b"emptyRecycleBin" in body:
                return self._empty_recycle_bin(body)
            return self._soap_login(body)
        if path == "/services/oauth2/token" and method == "POST":
            return self._token(body)
        endpoint, action = self._resolve(method, path, params, body)
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if token not in fake.sessions:
            raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        kind = fake._fault(endpoint)
        if kind == "expire":
            fake.expire_sessions()
            raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        usage = fake.org.count(endpoint)
        limit_headers = {"Sforce-Limit-Info": usage}
        if kind == "limit":
            fake.injected[kind] += 1
            raise ApiError(403, "REQUEST_LIMIT_EXCEEDED",
                           "ConcurrentPerOrgLongTxn Limit exceeded.", limit_headers)
        if kind == "unavailable" or (kind == "after_commit" and endpoint not in MUTATING):
            fake.injected["unavailable"] += 1
            raise ApiError(503, "SERVER_UNAVAILABLE", "Service temporarily unavailable",
                           limit_headers)
        status, headers, payload = action()
        if fake.after_action is not None:
            fake.after_action(endpoint)
        if kind == "after_commit":
            fake.injected[kind] += 1
            raise ApiError(503, "SERVER_UNAVAILABLE", "Service temporarily unavailable",
                           limit_headers)
        return status, {**headers, **limit_headers}, payload

    def _resolve(self, method: str, path: str, params: dict[str, list[str]], body: bytes
                 ) -> tuple[str, Callable[[], tuple[int, dict[str, str], bytes]]]:
        org = self.fake.org

        def js(value: Any, status: int = 200) -> Callable[[], tuple[int, dict[str, str],
                                                                    bytes]]:
            def answer() -> tuple[int, dict[str, str], bytes]:
                result = value() if callable(value) else value
                return status, {"Content-Type": "application/json"}, json.dumps(
                    result).encode()
            return answer

        if path == "/services/oauth2/userinfo":
            return "userinfo", js(lambda: {"user_id": org.user_id,
                                           "organization_id": "00D000000000001AAA",
                                           "preferred_username": self.fake.username})
        m = re.match(r"^/services/data/v(\d+\.\d)/(.*?)/?$", path)
        if not m:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        rest = m.group(2)
        q = params["q"][0] if params.get("q") else None
        if method == "GET" and rest in ("query", "queryAll") and q is not None:
            deleted = rest == "queryAll"
            return rest, js(lambda: org.query(q, include_deleted=deleted))
        if method == "GET" and (cm := re.match(r"^(query|queryAll)/([\w]+)-\d+$", rest)):
            deleted = cm.group(1) == "queryAll"
            cursor = cm.group(2)
            return "query_more", js(lambda: org.more(cursor, include_deleted=deleted))
        if method == "GET" and rest == "search" and q is not None:
            return "search", js(lambda: org.search(q))
        if method == "GET" and rest == "sobjects":
            return "describe_global", js(org.describe_global)
        if method == "GET" and (dm := re.match(r"^sobjects/(\w+)/describe$", rest)):
            name = dm.group(1)
            return "describe", js(lambda: org.describe(name))
        if rest == "composite/sobjects":
            if method == "DELETE":
                ids = [i for i in unquote((params.get("ids") or [""])[0]).split(",") if i]
                return "composite_delete", js(lambda: org.delete(ids))
            records = _json(body).get("records", [])
            if method == "PATCH":
                return "composite_update", js(lambda: org.update(records))
            if method == "POST":
                return "composite_create", js(lambda: org.insert(records))
        if rest == "jobs/ingest" and method == "POST":
            spec = _json(body)

            return "job_create", js(lambda: org.job_create(spec))
        if jm := re.match(r"^jobs/ingest/(\w+)(?:/(batches|successfulResults|failedResults))?$",
                          rest):
            job_id, sub = jm.group(1), jm.group(2)
            if sub == "batches" and method == "PUT":
                def upload() -> tuple[int, dict[str, str], bytes]:
                    org.job_upload(job_id, body.decode("utf-8"))
                    return 201, {}, b""
                return "job_upload", upload
            if sub in ("successfulResults", "failedResults") and method == "GET":
                kind = sub

                def results() -> tuple[int, dict[str, str], bytes]:
                    return 200, {"Content-Type": "text/csv"}, org.job_results(
                        job_id, kind).encode()
                return "job_results", results
            if sub is None and method == "PATCH":
                state = _json(body).get("state", "")
                return "job_close", js(lambda: org.job_patch(job_id, state))
            if sub is None and method == "GET":
                return "job_read", js(lambda: org.job_read(job_id))
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    # logins ------------------------------------------------------------------------------

    def _soap_login(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        fake = self.fake
        fake.org.calls["login"] += 1
        text = body.decode("utf-8", "replace")

        def element(name: str) -> str:
            m = re.search(rf"<(?:\w+:)?{name}>(.*?)</(?:\w+:)?{name}>", text, re.DOTALL)
            return _unescape(m.group(1)) if m else ""

        if (element("username") != fake.username
                or element("password") != fake.password + fake.security_token):
            fault = _fault("INVALID_LOGIN", "Invalid username, password, security token; "
                                            "or user locked out.")
            return 500, {"Content-Type": "text/xml"}, _envelope(fault).encode()
        session = fake.new_session()
        ok = (f"<loginResponse><result><serverUrl>{escape(self._instance())}/services/Soap/u/"
              f"59.0/00D000000000001</serverUrl><sessionId>{escape(session)}</sessionId>"
              f"<userId>{fake.org.user_id}</userId></result></loginResponse>")
        return 200, {"Content-Type": "text/xml"}, _envelope(ok).encode()

    def _empty_recycle_bin(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """SOAP ``emptyRecycleBin(ids)``: at most 200 ids; results by position."""
        import xml.etree.ElementTree as ET

        fake = self.fake
        xml = {"Content-Type": "text/xml"}
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return 500, xml, _envelope(_fault("INVALID_XML", "malformed request")).encode()
        texts: dict[str, list[str]] = {el.tag.rsplit("}", 1)[-1]: [] for el in root.iter()}
        for el in root.iter():
            texts[el.tag.rsplit("}", 1)[-1]].append(el.text or "")
        session = (texts.get("sessionId") or [""])[0]
        if session not in fake.sessions:
            return 500, xml, _envelope(_fault("INVALID_SESSION_ID",
                                              "Invalid Session ID")).encode()
        kind = fake._fault("empty_recycle_bin")
        if kind in ("limit", "unavailable"):
            fake.injected[kind] += 1
            if kind == "limit":
                return 500, xml, _envelope(_fault("REQUEST_LIMIT_EXCEEDED",
                                                  "TotalRequests Limit exceeded.")).encode()
            return 503, {"Content-Type": "text/plain"}, b"Service Unavailable"
        ids = texts.get("ids", [])
        if len(ids) > 200:
            return 500, xml, _envelope(_fault("LIMIT_EXCEEDED", "too many ids")).encode()
        fake.org.count("empty_recycle_bin")
        results = []
        for rid, error in zip(ids, fake.org.empty_recycle_bin(ids), strict=True):
            if error is None:
                results.append(f"<result><id>{escape(rid)}</id><success>true</success>"
                               "</result>")
            else:
                results.append(f"<result><errors><statusCode>{error}</statusCode><message>"
                               f"{error.lower()}</message></errors><id xsi:nil=\"true\"/>"
                               "<success>false</success></result>")
        if kind == "after_commit":
            fake.injected[kind] += 1
            return 503, {"Content-Type": "text/plain"}, b"Service Unavailable"
        answer = f"<emptyRecycleBinResponse>{''.join(results)}</emptyRecycleBinResponse>"
        return 200, xml, _envelope(answer).encode()

    def _token(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        fake = self.fake
        fake.org.calls["token"] += 1
        form = parse_qs(body.decode("utf-8"))
        bad = (400, {"Content-Type": "application/json"}, json.dumps(
            {"error": "invalid_grant", "error_description": "invalid assertion"}).encode())
        if (form.get("grant_type") or [""])[0] != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return bad
        assertion = (form.get("assertion") or [""])[0]
        if fake.jwt_public_key is None:
            return bad
        import jwt

        try:
            claims = jwt.decode(assertion, fake.jwt_public_key, algorithms=["RS256"],
                                options={"verify_aud": False})
        except jwt.PyJWTError:
            return bad
        if (claims.get("iss") != fake.consumer_key or claims.get("sub") != fake.username
                or float(claims.get("exp", 0)) < time.time()):
            return bad
        session = fake.new_session()
        return 200, {"Content-Type": "application/json"}, json.dumps({
            "access_token": session, "instance_url": self._instance(),
            "token_type": "Bearer", "scope": "api"}).encode()

    def _instance(self) -> str:
        # The connector maps https:// back to http:// for loopback instances.
        assert isinstance(self.server, ThreadingHTTPServer)
        return f"https://127.0.0.1:{self.server.server_port}"


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except json.JSONDecodeError:
        raise ApiError(400, "JSON_PARSER_ERROR", "the request body is not JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "expected a JSON object")
    return value


def _envelope(inner: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
            '"http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f"<soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>")


def _fault(code: str, message: str) -> str:
    return (f"<soapenv:Fault><faultcode>sf:{code}</faultcode><faultstring>{code}: "
            f"{escape(message)}</faultstring></soapenv:Fault>")


def _unescape(text: str) -> str:
    from xml.sax.saxutils import unescape

    return unescape(text, {"&quot;": '"', "&apos;": "'"})
