"""The helpdesk of ``erasure demo``: a fake Zendesk account on 127.0.0.1, seeded with the
demo's people, and what is left of it afterwards."""

from __future__ import annotations

import os

from .server import FakeZendesk

__all__ = ["CONFIG", "left", "start"]

TOKEN_ENV = "ERASURE_DEMO_ZENDESK_TOKEN"
AGENT = "demo-agent@example.com"

CONFIG = """
[systems.helpdesk]
connector = "zendesk"
url = "{url}"
email = "{agent}"
token = {{ env = "{env}" }}
poll_seconds = 0
"""


def start(shared_phone: str) -> tuple[FakeZendesk, str]:
    """Start the fake account and seed it; returns it and its ``[systems.helpdesk]`` text.

    Alice (the demo's subject) requested a ticket with a photo attached and commented on
    Jim's; Jim has a lookalike address; Bob shares Alice's phone; Carol's helpdesk customer
    number is C-1001, the subject's number in another id space (never searched here).
    """
    os.environ.setdefault(TOKEN_ENV, "demo-zendesk-token")
    fake = FakeZendesk(email=AGENT, token=os.environ[TOKEN_ENV])
    fake.store.job_polls = 1  # the demo's jobs finish at their first poll
    st = fake.store
    agent = st.add_user("Dana Agent", "dana@shop.example", role="agent")
    alice = st.add_user("Alice Example", "alice@example.com", shared_phone)
    jim = st.add_user("Jim Alice", "jimalice@example.com")
    st.add_user("Bob Example", None, shared_phone)
    st.add_user("Carol Example", "carol@example.net",
                user_fields={"customer_number": "C-1001"})
    st.add_ticket(alice, "Where is my kettle?", [(alice, "Ordered 3 weeks ago."),
                                                 (agent, "It ships tomorrow.")],
                  attachments={0: ["receipt.jpg"]})
    st.add_ticket(jim, "Gift wrapping", [(jim, "Can you wrap my order?"),
                                         (alice, "Same question from me!")])
    fake.start()
    return fake, CONFIG.format(url=fake.url, agent=AGENT, env=TOKEN_ENV)


def left(fake: FakeZendesk) -> list[tuple[str, int]]:
    """(what, how many) is left in the account: users not permanently deleted, tickets not
    permanently deleted, comments holding Alice's own text."""
    st = fake.store
    users = sum(1 for u in st.users.values() if u["state"] != "purged")
    tickets = sum(1 for t in st.tickets.values() if t["state"] != "purged")
    alices = sum(1 for cs in st.comments.values() for c in cs
                 if "Same question from me" in c["body"] or "Ordered 3 weeks" in c["body"])
    return [("helpdesk users (Zendesk)", users), ("helpdesk tickets", tickets),
            ("helpdesk comments with Alice's text", alices)]
