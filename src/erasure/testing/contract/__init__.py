"""The connector contract suite: subclass :class:`ConnectorContract` in your connector's tests.

Every test seeds a small population into the real system behind your ``connector`` fixture
and checks what the connector finds, exports and changes against what was seeded. You
provide three things:

- ``connector``: a pytest fixture returning a ready :class:`~erasure.connector.Connector`
  for a fresh, empty system;
- ``seed(connector, subject, *, single=False) -> Seeded``: create the data of ``subject``
  and say what you created (see :class:`Seeded`);
- ``restricted(connector, findings) -> set[str]``: the refs among ``findings`` whose items
  are marked restricted (only if the connector declares ``RESTRICT``);
- ``objected(connector, findings, scope) -> set[str]``: the refs among ``findings`` whose
  items are opted out of ``scope``'s processing (only if the connector declares ``OBJECT``).

and, as a class attribute, ``seed_types``: the identifier types ``seed`` can store (default
``{EMAIL}``). The suite uses the types in both ``seed_types`` and the connector's
``identifier_types`` (``None`` there means every type).

Optional hooks: ``seed_many(connector, subject, count) -> Seeded`` (``count`` items of one
subject, for the large scenario; the default calls ``seed(single=True)`` ``count`` times,
which a system with unique keys refuses: override it with one bulk insert) and
``refuse_item(connector, finding)`` (make the system refuse one item: needed by the deferred-job
test of a connector that answers PENDING; it returns the refs of items the connector keeps
while that one stays, if any). The class attribute ``population`` (default
2,500, env ``ERASURE_CONTRACT_POPULATION``) is how many items that subject gets: more than
two pages of 1,000; a fixture that sets a small page size may lower it.

Every action the suite calls runs in a host call context (:func:`~erasure.connector.in_call`:
a deadline, an idempotency key per subject, new for each call) and PENDING outcomes are
polled until they end, as the host does.

A complete example, for a notes service with contacts (email, phone) and notes on them::

    import pytest
    from erasure import IdentifierType
    from erasure.testing import ConnectorContract, Seeded

    class TestNotes(ConnectorContract):
        seed_types = frozenset({IdentifierType.EMAIL, IdentifierType.PHONE})

        @pytest.fixture
        def connector(self, notes_server):
            # Fixtures and tests of a class share one instance: seed() can use self.server.
            self.server = notes_server
            return NotesConnector("notes", NotesSettings(base_url=notes_server.url, token="t"))

        def seed(self, connector, subject, *, single=False):
            email = subject.of_type(IdentifierType.EMAIL)[0]
            phone = subject.of_type(IdentifierType.PHONE)[0]
            contact = self.server.add_contact(email=email, phone=phone)
            if single:  # exactly one item
                return Seeded(items=1, markers={email, phone})
            texts = [f"note {n} of {subject.key}" for n in (1, 2)]
            for text in texts:
                self.server.add_note(contact=contact, text=text)
            # The contact and its two notes; export returns the email and phone (contact)
            # and the texts (notes) as field values.
            return Seeded(items=3, markers={email, phone, *texts})

        def restricted(self, connector, findings):
            return {f.ref for f in findings if self.server.is_frozen(f.ref)}

The population (``subject.key`` in brackets; each person has one value of every seeded type,
and ``seed`` must store each of them on at least one item):

- Bob (``req-bob``), Carol (``req-carol``) and Crowd people (``req-crowd-NN``, only in the
  batch tests): subjects. Dave (``req-dave``) and every other Crowd person are seeded with
  ``single=True`` (exactly one item: a bug that only shows when a subject has one item must
  show, and one-item subjects fill delete calls up to exactly the batch size).
- Jimbob (``req-jimbob``): a lookalike whose every value contains Bob's
  (``jimbob@example.org`` vs ``bob@example.org``, ``+49301234567`` vs ``+4930123456``...).
- Alice (``req-alice``, with PHONE): has Bob's phone. Finding Bob finds Alice's items too,
  matched through the phone alone; the suite acts only on findings matched through an
  identifier no other person has (as the host acts only on strong matches) and checks that
  Alice's items survive whatever is done to Bob's.
- Xavier (``req-xavier``, with two of CUSTOMER_ID, USER_ID, NAME): his value of the second
  type is Bob's value of the first (his user_id is Bob's customer_id ``800123``). Finding
  Bob's customer_id must not find Xavier.

What is checked, against the real system:

- find: each person's items exactly (``Seeded.items``), each identifier type alone, never a
  lookalike, never the same value held as another type, every holder of a shared phone
  (matched through the phone alone), a batch finds what single calls find, hostile
  identifiers match nothing and change nothing, an empty batch does nothing;
- export: one record per finding given and no other, each with its subject's markers and
  nobody else's, alone and in one batch of everyone;
- delete: a subject's findings in one call, and many subjects' findings in calls of 1, 2,
  3 and 50 findings (items answered PENDING are polled until they finish, as the host
  would) (:data:`BATCH_SIZES`; whole subjects per call, refs sorted, as the host
  sends them), leave nothing to find again and nobody else changed (their findings, records
  and restriction flags); a second delete yields ALREADY_DONE and changes nothing;
- anonymise and restrict, for a one-item and a several-item subject with the neighbours
  present: only the subject's items change; a second run yields ALREADY_DONE and changes
  nothing;
- rectify (optional, ``RECTIFY``): a subject's email (else phone, else name) corrected is
  found by the new value on exactly the items that held the old one, by the old value on
  none, exported with the new value; one call for two subjects gives each its own
  correction; nobody else changes; a repeat yields ALREADY_DONE;
- object_to (optional, ``OBJECT``): the subject's items opted out of marketing (those
  answered DONE; an item with no opt-out of its own answers ALREADY_DONE), nothing
  deleted, nobody else opted out or changed; a repeat yields ALREADY_DONE; a scope the
  system cannot honour is refused with ``CapabilityNotSupported`` and changes nothing;
- a large population: a subject with ``population`` items is found, exported, restricted
  and deleted whole (one call for one subject, as the host sends it), nobody else changed;
- deferred jobs (a connector answering PENDING): polled until DONE with the effect in the
  system; a repeated poll answers DONE or ALREADY_DONE and changes nothing; a job refused
  for one item (``refuse_item``; one of a kind the subject has several of, where there is
  one) fails exactly that item (and those ``refuse_item`` says are kept with it), with a
  reason, and does the others;
- no identifier in log lines or reprs, no secret in the settings' or connector's repr or in
  log lines.

Failure messages name the bug: an export that returns a neighbour's data says so wherever
it is seen (never "delete touched someone else's data"); a change to someone else's data
says whose and what (items found, records, flags).

Tests of actions the connector does not declare in ``capabilities`` check that it refuses
them with :class:`~erasure.errors.CapabilityNotSupported`.
"""

from __future__ import annotations

from .acting import ActionTests
from .base import BATCH_SIZES, NEIGHBOUR_EMAIL, SUBJECT_EMAIL, Seeded
from .finding import FindTests
from .hygiene import HygieneTests
from .jobs import DeferredJobTests
from .rights import RightsTests
from .scale import POPULATION_ENV, ScaleTests

__all__ = ["BATCH_SIZES", "NEIGHBOUR_EMAIL", "POPULATION_ENV", "SUBJECT_EMAIL",
           "ConnectorContract", "Seeded"]


class ConnectorContract(FindTests, ActionTests, RightsTests, ScaleTests, DeferredJobTests,
                        HygieneTests):
    """Behaviour every connector must have.

    Subclass it, provide the ``connector`` fixture and :meth:`seed` (and :meth:`restricted`
    when the connector restricts), and set :attr:`seed_types`. See the module docstring.
    """
