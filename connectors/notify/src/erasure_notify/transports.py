"""Delivery of one message by SMTP (smtplib) or by a signed webhook (http.client).

Each transport calls ``commit()`` at its point of no return: after the SMTP server took
sender and recipients and just before ``DATA``; after the webhook's connection is open and
just before the request is written. Before that point, a failure means nothing was
delivered. After it, a refusal the server states (an SMTP reply to ``DATA``, an HTTP
status) still means nothing was delivered; a lost connection or a timeout does not say,
and raises :class:`DeliveryUncertain`. Errors are classified (erasure.errors) and name no
value; nothing sleeps or retries here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from erasure import AuthError, PermanentError, TransientError

from .signing import signed_headers

if TYPE_CHECKING:
    import ssl

    from .message import Message
    from .settings import NotifySettings

__all__ = ["DeliveryUncertain", "deliver", "probe"]

#: Idempotency-Key and X-Erasure-Message-Id carry the message id: a receiver that keeps
#: the ids it has seen never acts on one message twice.
MESSAGE_ID_HEADER = "X-Erasure-Message-Id"


class DeliveryUncertain(TransientError):
    """The connection broke after the message was handed over: it may have arrived. The
    sent-log keeps it as sent (never sent twice); the reminder refers to it."""


def deliver(settings: NotifySettings, message: Message, commit: Callable[[], None]) -> None:
    """Deliver ``message`` by the system's transport."""
    if settings.transport == "smtp":
        _smtp(settings, message, commit)
    else:
        _webhook(settings, message, commit)


@functools.cache
def _tls() -> ssl.SSLContext:
    """The TLS context (system CAs, hostname checks), made once: loading the CA store took
    80 ms, more than a whole SMTP session on a local network."""
    import ssl

    return ssl.create_default_context()


def probe(settings: NotifySettings) -> None:
    """Reach the transport without sending anything (``erasure systems check``): the SMTP
    server's greeting, STARTTLS and login; the webhook's connection (and TLS)."""
    if settings.transport == "smtp":
        _smtp(settings, None, lambda: None)
    else:
        _webhook(settings, None, lambda: None)


# smtp ---------------------------------------------------------------------------------

def _by_code(code: int, what: str) -> Exception:
    text = f"SMTP server answered {code} to {what}"
    if code in (530, 534, 535, 538):
        return AuthError(text)
    if 400 <= code < 500:
        return TransientError(text)
    return PermanentError(text)


def email_bytes(settings: NotifySettings, message: Message) -> bytes:
    """The RFC 5322 message: plain text, UTF-8, its Message-ID and (reminders) the
    notice it follows up."""
    from datetime import datetime
    from email.message import EmailMessage
    from email.policy import SMTP
    from email.utils import format_datetime

    msg = EmailMessage(policy=SMTP)
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.to)
    msg["Subject"] = message.subject
    msg["Date"] = format_datetime(datetime.fromisoformat(message.sent_at))
    msg["Message-ID"] = message.message_id
    if message.refers_to:
        msg["In-Reply-To"] = message.refers_to[0]
        msg["References"] = " ".join(message.refers_to)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Erasure-Action"] = message.action
    msg.set_content(message.text, charset="utf-8")
    return msg.as_bytes()


def _smtp(settings: NotifySettings, message: Message | None,
          commit: Callable[[], None]) -> None:
    import smtplib
    import ssl

    assert settings.host is not None and settings.sender is not None
    port = settings.smtp_port()
    data = email_bytes(settings, message) if message is not None else b""
    committed = False
    try:
        if settings.security == "tls":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, port, timeout=settings.timeout,
                                                  context=_tls())
        else:
            conn = smtplib.SMTP(settings.host, port, timeout=settings.timeout)
    except ssl.SSLCertVerificationError:
        raise PermanentError("the SMTP server's certificate did not verify") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise TransientError(f"SMTP server not reachable ({type(exc).__name__})") from None
    try:
        conn.ehlo()
        if settings.security == "starttls":
            conn.starttls(context=_tls())
            conn.ehlo()
        if settings.username is not None and settings.password is not None:
            conn.login(settings.username, settings.password.get_secret_value())
        if message is None:  # a probe: reached, greeted, logged in
            return
        code, _ = conn.mail(settings.sender)
        if code != 250:
            raise _by_code(code, "MAIL FROM")
        for rcpt in settings.to:
            code, _ = conn.rcpt(rcpt)
            if code not in (250, 251):
                raise _by_code(code, "RCPT TO")  # all recipients or none
        commit()
        committed = True
        try:
            # raises SMTPDataError only for the reply to DATA itself; the reply to the
            # message (250, or a refusal) is returned
            code, _ = conn.data(data)
        except smtplib.SMTPDataError as exc:
            raise _by_code(exc.smtp_code, "DATA") from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise DeliveryUncertain(
                f"connection lost while the SMTP server took the message "
                f"({type(exc).__name__})") from None
        if code != 250:
            raise _by_code(code, "the message")
    except (AuthError, PermanentError, TransientError):
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise AuthError(f"SMTP login refused ({exc.smtp_code})") from None
    except smtplib.SMTPNotSupportedError:
        raise PermanentError("the SMTP server does not offer STARTTLS (or AUTH)") from None
    except ssl.SSLCertVerificationError:
        raise PermanentError("the SMTP server's certificate did not verify") from None
    except smtplib.SMTPResponseException as exc:
        raise _by_code(exc.smtp_code, "the session") from None
    except (smtplib.SMTPException, OSError) as exc:
        if committed:
            raise DeliveryUncertain(f"SMTP session broke ({type(exc).__name__})") from None
        raise TransientError(f"SMTP session broke ({type(exc).__name__})") from None
    finally:
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()


# webhook ------------------------------------------------------------------------------

def _webhook(settings: NotifySettings, message: Message | None,
             commit: Callable[[], None]) -> None:
    import http.client
    import ssl
    from urllib.parse import urlsplit

    assert settings.url is not None and settings.secret is not None
    parts = urlsplit(settings.url)
    host = parts.hostname or ""
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, parts.port, timeout=settings.timeout,
                                           context=_tls())
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=settings.timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        try:
            conn.connect()
        except ssl.SSLCertVerificationError:
            raise PermanentError("the webhook's certificate did not verify") from None
        except OSError as exc:
            raise TransientError(f"webhook not reachable ({type(exc).__name__})") from None
        if message is None:  # a probe: reached (and TLS verified)
            return
        body = json.dumps(message.as_json(), sort_keys=True,
                          ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8",
                   MESSAGE_ID_HEADER: message.message_id,
                   "Idempotency-Key": message.message_id,
                   **signed_headers(settings.secret.get_secret_value(), body)}
        commit()
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read(65536)
        except (OSError, http.client.HTTPException) as exc:
            raise DeliveryUncertain(
                f"connection lost while the webhook took the message ({type(exc).__name__})"
            ) from None
    finally:
        conn.close()
    status = resp.status
    if 200 <= status < 300:
        return  # delivered; a confirmation comes later, signed, or by `erasure confirm`
    text = f"webhook answered HTTP {status}"
    if status in (408, 425, 429) or status >= 500:
        after = resp.getheader("Retry-After")
        raise TransientError(text, retry_after=float(after) if after and after.isdigit()
                             else None)
    if status in (401, 403):
        raise AuthError(text)
    raise PermanentError(text)
