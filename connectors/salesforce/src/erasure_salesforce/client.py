"""The connection to the org (simple-salesforce, imported lazily) and error classification.

simple-salesforce builds ``https://`` URLs from the instance; for a local server at
``http://127.0.0.1:PORT`` a requests adapter sends them as plain http. An expired session
is refreshed by simple-salesforce itself for ``jwt`` and ``password`` auth; with a given
``session_id`` it cannot be, and the call fails with AuthError.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from erasure import AuthError, PermanentError, TransientError

from .settings import SalesforceSettings, is_loopback

__all__ = ["Api", "sf_errors"]

#: seconds to wait after "TotalRequests Limit exceeded" (the 24-hour allowance is rolling:
#: some of it comes back within the hour)
DAILY_LIMIT_WAIT = 3600.0
#: seconds after a concurrency limit or an unavailable server
SHORT_WAIT = 30.0


def _error_code(exc: Any) -> str:
    content = getattr(exc, "content", None)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode") or "")
    if isinstance(content, dict):
        return str(content.get("errorCode") or content.get("error") or "")
    return ""


def _error_message(exc: Any) -> str:
    content = getattr(exc, "content", None)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("message") or "")
    return ""


@contextlib.contextmanager
def sf_errors(what: str) -> Iterator[None]:
    """Classify what simple-salesforce and requests raise while doing ``what``.

    Messages name the operation and Salesforce's error code, never a value (a query's
    text holds identifiers)."""
    import requests
    from simple_salesforce import exceptions as sfe

    try:
        yield
    except sfe.SalesforceAuthenticationFailed:
        raise AuthError(f"{what}: Salesforce sign-in failed (check the credentials)") from None
    except sfe.SalesforceExpiredSession:
        raise AuthError(f"{what}: INVALID_SESSION_ID (the session expired and this auth "
                        "mode cannot sign in again; give a new session_id or use jwt)") from None
    except sfe.SalesforceRefusedRequest as exc:
        code = _error_code(exc)
        if code == "REQUEST_LIMIT_EXCEEDED":
            daily = "TotalRequests" in _error_message(exc)
            raise TransientError(f"{what}: REQUEST_LIMIT_EXCEEDED",
                                 retry_after=DAILY_LIMIT_WAIT if daily else SHORT_WAIT) from None
        raise AuthError(f"{what}: {code or 'refused'} (the user lacks a permission)") from None
    except sfe.SalesforceMalformedRequest as exc:
        raise PermanentError(f"{what}: {_error_code(exc) or 'malformed request'}") from None
    except sfe.SalesforceResourceNotFound as exc:
        raise PermanentError(f"{what}: {_error_code(exc) or 'NOT_FOUND'}") from None
    except sfe.SalesforceGeneralError as exc:
        status = getattr(exc, "status", 0) or 0
        if status >= 500 or status in (408, 429):
            raise TransientError(f"{what}: HTTP {status}", retry_after=SHORT_WAIT
                                 if status == 429 else None) from None
        raise PermanentError(f"{what}: HTTP {status} {_error_code(exc)}".rstrip()) from None
    except sfe.SalesforceError as exc:
        raise PermanentError(f"{what}: {type(exc).__name__}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(f"{what}: {type(exc).__name__}") from None


def _adapter_class() -> Any:
    from requests import PreparedRequest, Response
    from requests.adapters import HTTPAdapter

    class Adapter(HTTPAdapter):
        """Gives every request a timeout, and sends ``https://`` URLs of a local server
        (and of the login host, when a local login_url is set) to it as plain http."""

        def __init__(self, timeout: float, rewrite: dict[str, str]) -> None:
            super().__init__()
            self.timeout = timeout
            self.rewrite = rewrite

        def send(self, request: PreparedRequest, stream: bool = False,
                 timeout: float | tuple[float | None, float | None] | None = None,
                 verify: bool | str = True, cert: None | str | tuple[str, str] = None,
                 proxies: dict[str, str] | None = None) -> Response:
            url = request.url or ""
            for src, dst in self.rewrite.items():
                if url.startswith(src):
                    request.url = dst + url[len(src):]
                    break
            return super().send(request, stream=stream,
                                timeout=self.timeout if timeout is None else timeout,
                                verify=verify, cert=cert, proxies=proxies)

    return Adapter


class Api:
    """One signed-in client of the org, made at first use; thread-safe to share."""

    def __init__(self, settings: SalesforceSettings) -> None:
        self.settings = settings
        self._sf: Any = None
        self._lock = threading.Lock()
        #: the last ``Sforce-Limit-Info`` seen: ``{"used": n, "total": m}``
        self.usage: dict[str, int] = {}
        # Reads completed in the host call under way (see _memo_for).
        self._memo: dict[tuple[str, Any], list[dict[str, Any]]] = {}
        self._memo_call: object = None

    # connection --------------------------------------------------------------------------

    def _session(self) -> Any:
        import requests

        s = self.settings
        rewrite: dict[str, str] = {}
        if is_loopback(s.instance_url):
            netloc = urlsplit(s.instance_url).netloc
            rewrite[f"https://{netloc}/"] = f"{s.instance_url}/"
        if s.login_url is not None:
            rewrite[f"https://{s.domain}.salesforce.com/"] = f"{s.login_url}/"
        session = requests.Session()
        adapter = _adapter_class()(s.timeout, rewrite)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    @property
    def sf(self) -> Any:
        """The simple_salesforce.Salesforce client (signs in on first use)."""
        with self._lock:
            if self._sf is None:
                with sf_errors("sign in"):
                    self._sf = self._connect()
            return self._sf

    def _connect(self) -> Any:
        from simple_salesforce import Salesforce

        s = self.settings
        common: dict[str, Any] = {"session": self._session(), "version": s.api_version,
                                  "domain": s.domain}
        secret = _secret
        if s.auth == "session":
            return Salesforce(session_id=secret(s.session_id), instance_url=s.instance_url,
                              **common)
        if s.auth == "password":
            return Salesforce(username=s.username, password=secret(s.password),
                              security_token=secret(s.security_token), **common)
        return Salesforce(username=s.username, consumer_key=secret(s.consumer_key),
                          privatekey=secret(s.private_key), **common)

    def close(self) -> None:
        with self._lock:
            if self._sf is not None:
                self._sf.session.close()
                self._sf = None

    # calls -------------------------------------------------------------------------------

    def _note_usage(self) -> None:
        usage = getattr(self._sf, "api_usage", {}).get("api-usage")
        if usage is not None:
            self.usage = {"used": int(usage.used), "total": int(usage.total)}

    def request(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """One REST call below ``/services/data/vXX.X/``; returns the requests.Response."""
        sf = self.sf
        with sf_errors(what):
            # _call_salesforce is simple-salesforce's one request path: it signs the
            # request, refreshes an expired session where the auth mode can, and raises
            # its typed errors; restful() cannot send CSV or read a CSV answer.
            response = sf._call_salesforce(method, sf.base_url + path, name=what, **kwargs)
        self._note_usage()
        return response

    def json(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        response = self.request(method, path, what, **kwargs)
        return response.json() if response.content else None

    def call_memo(self) -> dict[tuple[str, Any], list[dict[str, Any]]] | None:
        """The reads already answered in this host call. The host retries a failed call
        as a whole; a find of a hundred subjects makes a dozen reads, and repeating the
        ones that had succeeded would let a few transient faults fail every attempt.
        Reads only, and only within one call (one CallContext): never a stale answer
        across calls. None outside a host call."""
        from erasure import current_call

        try:
            call = current_call()
        except RuntimeError:
            return None
        with self._lock:
            if call is not self._memo_call:
                self._memo, self._memo_call = {}, call
            return self._memo

    def query(self, soql: str, what: str, *, include_deleted: bool = False
              ) -> list[dict[str, Any]]:
        """Every record of a SOQL query, following ``nextRecordsUrl`` to the end."""
        memo = self.call_memo()
        key = (soql, include_deleted)
        if memo is not None and key in memo:
            return memo[key]
        sf = self.sf
        records: list[dict[str, Any]] = []
        with sf_errors(what):
            result = sf.query(soql, include_deleted=include_deleted)
            while True:
                self._note_usage()
                records.extend(result["records"])
                if result.get("done", True):
                    break
                result = sf.query_more(result["nextRecordsUrl"], identifier_is_url=True)
        if memo is not None:
            memo[key] = records
        return records

    def search(self, sosl: str, what: str) -> list[dict[str, Any]]:
        memo = self.call_memo()
        key = (sosl, False)
        if memo is not None and key in memo:
            return memo[key]
        sf = self.sf
        with sf_errors(what):
            result = sf.search(sosl)
        self._note_usage()
        records = list((result or {}).get("searchRecords", []))
        if memo is not None:
            memo[key] = records
        return records

    def empty_recycle_bin(self, ids: list[str]) -> list[str | None]:
        """SOAP ``emptyRecycleBin`` (at most 200 ids; REST has no such call): per id, in
        order, None when purged, else Salesforce's status code."""
        import xml.etree.ElementTree as ET
        from xml.sax.saxutils import escape

        import requests

        sf = self.sf
        body = ('<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env='
                '"http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn='
                '"urn:partner.soap.sforce.com"><env:Header><urn:SessionHeader><urn:sessionId>'
                f"{escape(sf.session_id)}</urn:sessionId></urn:SessionHeader></env:Header>"
                "<env:Body><urn:emptyRecycleBin>"
                + "".join(f"<urn:ids>{escape(i)}</urn:ids>" for i in ids)
                + "</urn:emptyRecycleBin></env:Body></env:Envelope>")
        url = f"https://{sf.sf_instance}/services/Soap/u/{self.settings.api_version}"
        try:
            response = sf.session.post(url, data=body.encode(), headers={
                "Content-Type": "text/xml; charset=UTF-8", "SOAPAction": "emptyRecycleBin"})
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"empty recycle bin: {type(exc).__name__}") from None
        what = "empty recycle bin"
        if response.status_code >= 500 and b"faultcode" not in response.content:
            raise TransientError(f"{what}: HTTP {response.status_code}")
        try:
            root = ET.fromstring(response.content)
        except ET.ParseError:
            raise PermanentError(f"{what}: the answer is not SOAP") from None

        def local(el: ET.Element) -> str:
            return el.tag.rsplit("}", 1)[-1]

        fault = next((el.text or "" for el in root.iter() if local(el) == "faultcode"), None)
        if fault is not None:
            code = fault.rsplit(":", 1)[-1]
            if code == "INVALID_SESSION_ID":
                raise AuthError(f"{what}: INVALID_SESSION_ID")
            if code == "REQUEST_LIMIT_EXCEEDED":
                raise TransientError(f"{what}: REQUEST_LIMIT_EXCEEDED",
                                     retry_after=DAILY_LIMIT_WAIT)
            raise PermanentError(f"{what}: {code}")
        out: list[str | None] = []
        for result in (el for el in root.iter() if local(el) == "result"):
            fields = {local(c): c for c in result.iter()}
            ok = (fields["success"].text or "") == "true" if "success" in fields else False
            status = fields["statusCode"].text if "statusCode" in fields else "UNKNOWN"
            out.append(None if ok else (status or "UNKNOWN"))
        if len(out) != len(ids):
            raise PermanentError(f"{what}: answer does not match the request")
        return out

    def user_id(self) -> str:
        """The signed-in user's id (OAuth userinfo)."""
        sf = self.sf
        with sf_errors("userinfo"):
            response = sf._call_salesforce(
                "GET", f"https://{sf.sf_instance}/services/oauth2/userinfo", name="userinfo")
        self._note_usage()
        return str(response.json()["user_id"])


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""
