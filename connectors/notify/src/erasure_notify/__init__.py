"""erasure-notify: the ``notify`` connector. Processors without an API (telecom carriers, a
data-centre host) are told of erasures, restrictions and rectifications by email or by a
signed webhook (GDPR Art. 19), and confirm later."""

from .connector import NotifyConnector
from .inbound import confirm_signed
from .settings import NotifySettings
from .signing import Confirmation, InvalidSignature, sign, verify_confirmation, verify_signature

__all__ = [
    "Confirmation", "InvalidSignature", "NotifyConnector", "NotifySettings", "confirm_signed",
    "sign", "verify_confirmation", "verify_signature",
]
