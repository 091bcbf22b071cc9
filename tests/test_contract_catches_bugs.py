"""The connector contract suite catches real connector bugs (a mutation check).

Each bug below is planted in a MemoryConnector subclass, and pytester runs the contract
suite (as tests/test_memory_contract.py configures it) against that subclass, in process:
the listed contract tests must fail, each with a message naming the bug. Every case runs
only the tests that concern it (``-k``), which the unmodified MemoryConnector passes. The
same classes of bug planted in a scaffolded connector are in tests/test_scaffold.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace

import pytest
import test_memory_contract  # noqa: F401 - imported once here, not in every pytester run

from erasure import (
    Capability,
    Connector,
    Correction,
    Finding,
    IdentifierType,
    ItemOutcome,
    ItemStatus,
    ObjectionScope,
    Record,
    Subject,
)
from erasure.testing import MemoryConnector
from erasure.testing.memory import MemoryStore


class DeleteLeavesOneBehind(MemoryConnector):
    """(a) A batch of more than two findings keeps its last item, yet reports it DONE."""

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        if len(findings) <= 2:
            return super().delete(findings)
        # An off-by-one in a chunked delete: the last finding never reaches the store.
        outcomes = list(super().delete(findings[:-1]))
        return iter([*outcomes, ItemOutcome(findings[-1], ItemStatus.DONE)])


class ExportsSomeoneElse(MemoryConnector):
    """(b) Export looks items up by the matched email with a suffix match, not by ref: the
    export of bob@example.org also returns jimbob@example.org's item."""

    def export(self, findings: Sequence[Finding]) -> Iterator[Record]:
        out = []
        with self._open(write=False) as store:
            for f in findings:
                emails = [m.value for m in f.matched if m.type is IdentifierType.EMAIL]
                if not emails:
                    if f.ref in store.items:
                        out.append(Record(f, dict(store.items[f.ref]["fields"])))
                    continue
                for item in store.items.values():
                    if item["kind"] == f.kind and str(
                            item["fields"].get("email", "")).endswith(emails[0]):
                        out.append(Record(f, dict(item["fields"])))
        return iter(out)


class RestrictFlagsEveryone(MemoryConnector):
    """(c) Restricting a single item takes a "fast path" that forgets its filter."""

    def restrict(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        if len(findings) != 1:
            return super().restrict(findings)
        (f,) = findings
        with self._open(write=True) as store:
            item = store.items.get(f.ref)
            status = ItemStatus.ALREADY_DONE if item and item["restricted"] else ItemStatus.DONE
            for other in store.items.values():
                other["restricted"] = True
        return iter([ItemOutcome(f, status)])


class ActsWithoutDeclaring(MemoryConnector):
    """Declares only FIND and EXPORT but still deletes, anonymises and restricts."""

    capabilities = frozenset({Capability.FIND, Capability.EXPORT})


class FindAndExportOnly(MemoryConnector):
    """Correct, but declares and does less: two identifier types, no actions."""

    capabilities = frozenset({Capability.FIND, Capability.EXPORT})
    identifier_types = frozenset({IdentifierType.EMAIL, IdentifierType.PHONE})
    delete = Connector.delete  # type: ignore[assignment]
    anonymise = Connector.anonymise  # type: ignore[assignment]
    restrict = Connector.restrict  # type: ignore[assignment]
    rectify = Connector.rectify  # type: ignore[assignment]
    object_to = Connector.object_to  # type: ignore[assignment]


class RectifiesWithAnyonesCorrection(MemoryConnector):
    """(d) Applies every correction of the call to every finding: in a batch, Carol's
    items get Bob's corrected email."""

    def rectify(self, findings: Sequence[Finding], corrections: Sequence[Correction]
                ) -> Iterator[ItemOutcome]:
        return super().rectify(findings, [replace(c, subject=f.subject)
                                          for f in findings[:1] for c in corrections])


class ObjectionDeletes(MemoryConnector):
    """(e) "Stops processing" by removing the item."""

    def object_to(self, findings: Sequence[Finding], scope: ObjectionScope
                  ) -> Iterator[ItemOutcome]:
        outcomes = list(super().object_to(findings, scope))
        with self._open(write=True) as store:
            for f in findings:
                store.remove(f.ref)
        return iter(outcomes)




# The classes of bug every connector author can make (issue 28) -----------------------------


class SubstringOverErasure(MemoryConnector):
    """find matches an email anywhere in the field (SQL LIKE '%x%', IMAP SEARCH): Bob's
    find returns Jimbob's items, and erasing Bob erases Jimbob."""

    def _search(self, store: MemoryStore, itype: str, value: str) -> Iterator[str]:
        if itype != "email":
            return super()._search(store, itype, value)
        return iter(sorted(ref for ref, item in store.items.items()
                           if value in str(item["fields"].get("email", ""))))


class NoOpDelete(MemoryConnector):
    """delete answers DONE and removes nothing (a soft delete flag nobody reads)."""

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return iter([ItemOutcome(f, ItemStatus.DONE) for f in findings])


class FirstPageOnly(MemoryConnector):
    """find reads the first page of each answer and never asks for the next."""

    def _search(self, store: MemoryStore, itype: str, value: str) -> Iterator[str]:
        refs = sorted(store.index.get((itype, value), ()))
        return iter(refs[:self.settings.page_size or len(refs)])


class NoOpRestrict(MemoryConnector):
    """restrict answers DONE and marks nothing."""

    def restrict(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return iter([ItemOutcome(f, ItemStatus.DONE) for f in findings])


class SecondDeleteFails(MemoryConnector):
    """A delete of an item already gone fails ("404") instead of answering ALREADY_DONE:
    a request resumed after a crash would fail items that were erased."""

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return iter([o if o.status is not ItemStatus.ALREADY_DONE
                     else ItemOutcome(o.finding, ItemStatus.FAILED, error="not found")
                     for o in super().delete(findings)])


class SecretInRepr(MemoryConnector):
    """repr shows the settings' password, in a traceback or a debug print."""

    def __repr__(self) -> str:
        password = self.settings.password
        return f"<memory {self.system} {password.get_secret_value() if password else ''}>"


class SecretInLogs(MemoryConnector):
    """find logs the password it "connects" with."""

    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        password = self.settings.password
        logging.getLogger("memory").debug(
            "connecting with %s", password.get_secret_value() if password else "")
        return super().find(subjects)


class PendingNeverResolved(MemoryConnector):
    """poll reads the job but never its result: every item stays PENDING for ever."""

    def poll(self, pending: Sequence[ItemOutcome]) -> Iterator[ItemOutcome]:
        list(super().poll(pending))
        return iter([ItemOutcome(o.finding, ItemStatus.PENDING, handle=o.handle)
                     for o in pending])


SUITE = """
from test_contract_catches_bugs import {name}
from test_memory_contract import MemorySeeding


class TestPlanted(MemorySeeding):
    connector_class = {name}
    pending_polls = {polls}
    page_size = 10  # small pages keep the large scenario small: 25 items, three pages
    population = 25
"""


def run_suite(pytester: pytest.Pytester, connector: type[MemoryConnector], select: str,
              polls: int = 0) -> dict[str, str]:
    """Run the contract tests ``select`` (a ``-k`` expression) against ``connector``; the
    failed tests' names and their messages."""
    pytester.makepyfile(test_planted=SUITE.format(name=connector.__name__, polls=polls))
    # In process; plugins that cost seconds to load and add nothing here are left out.
    result = pytester.inline_run("-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                                 "-p", "no:anyio", "-k", select)
    passed, _skipped, failed = result.listoutcomes()
    assert passed or failed, "the suite did not run"
    return {r.nodeid.rsplit("::", 1)[1]: str(r.longrepr) for r in failed}


def _delete_tests(sizes: tuple[int, ...] = (1, 2, 3, 50)) -> set[str]:
    return {"test_delete_erases_and_find_again_returns_nothing",
            *(f"test_delete_in_batches[{n}]" for n in sizes)}


LARGE = "test_a_large_population_is_found_exported_and_erased_whole"
LOOKALIKE = {"test_find_never_matches_a_lookalike", "test_find_absent_subject_returns_nothing"}
ACTIONS = {
    *_delete_tests(),
    "test_second_delete_is_harmless",
    "test_anonymise_touches_only_the_subject[one_item]",
    "test_anonymise_touches_only_the_subject[several_items]",
    "test_second_anonymise_is_harmless",
    "test_restrict_touches_only_the_subject[one_item]",
    "test_restrict_touches_only_the_subject[several_items]",
    "test_second_restrict_is_harmless",
    "test_rectify_refused_unless_declared",
    "test_rectify_corrects_only_the_subject[one_item]",
    "test_rectify_corrects_only_the_subject[several_items]",
    "test_rectify_batch_gives_each_subject_its_own",
    "test_second_rectify_is_harmless",
    "test_object_to_refused_unless_declared",
    "test_object_to_marketing_opts_out_only_the_subject[one_item]",
    "test_object_to_marketing_opts_out_only_the_subject[several_items]",
    "test_second_object_to_is_harmless",
    "test_object_to_a_scope_it_cannot_honour_says_so",
}
DELETE_K = "delete or large"
JOBS_K = "deferred or repeated_poll or job_failing or delete_erases"

# (connector, -k selection, the tests that must fail (exactly, within the selection), a
# fragment every failure's message holds, polls before a job ends (0: no jobs))
CASES = [
    # The whole-batch delete test deletes Bob's two items: (a) needs three or more.
    pytest.param(DeleteLeavesOneBehind, DELETE_K,
                 {"test_delete_in_batches[3]", "test_delete_in_batches[50]", LARGE},
                 "left", 0, id="a-delete-leaves-one"),
    pytest.param(ExportsSomeoneElse, "export or delete or large",
                 {"test_export_returns_exactly_each_subjects_data", LARGE},
                 "returned data of a neighbour", 0, id="b-export-of-a-neighbour"),
    pytest.param(RestrictFlagsEveryone, "restrict",
                 {"test_restrict_touches_only_the_subject[one_item]"},
                 "restrict touched someone else's data", 0, id="c-restrict-flags-everyone"),
    pytest.param(RectifiesWithAnyonesCorrection, "rectify",
                 {"test_rectify_batch_gives_each_subject_its_own"}, "rectify", 0,
                 id="d-rectify-with-anyones-correction"),
    pytest.param(ObjectionDeletes, "object_to", {
        "test_object_to_marketing_opts_out_only_the_subject[one_item]",
        "test_object_to_marketing_opts_out_only_the_subject[several_items]",
        "test_second_object_to_is_harmless",
        "test_object_to_a_scope_it_cannot_honour_says_so"}, "", 0, id="e-objection-deletes"),
    pytest.param(ActsWithoutDeclaring, "not test_find and not export and not large"
                 " and not secrets and not repr", ACTIONS, "", 0,
                 id="undeclared-actions-not-refused"),
    pytest.param(SubstringOverErasure, "lookalike or absent or delete", {
        *LOOKALIKE, "test_delete_erases_and_find_again_returns_nothing",
        *(f"test_delete_in_batches[{n}]" for n in (1, 2, 3, 50))}, "", 0,
        id="substring-over-erasure"),
    pytest.param(NoOpDelete, DELETE_K, {*_delete_tests(), LARGE,
                                        "test_second_delete_is_harmless"}, "", 0,
                 id="no-op-delete"),
    pytest.param(FirstPageOnly, "large", {LARGE}, "does it read every page", 0,
                 id="first-page-only"),
    pytest.param(NoOpRestrict, "restrict or large", {
        "test_restrict_touches_only_the_subject[one_item]",
        "test_restrict_touches_only_the_subject[several_items]",
        "test_second_restrict_is_harmless", LARGE}, "restrict", 0, id="no-op-restrict"),
    pytest.param(SecondDeleteFails, "second_delete", {"test_second_delete_is_harmless"},
                 "a second delete", 0, id="second-delete-not-idempotent"),
    pytest.param(SecretInRepr, "secrets or repr", {"test_repr_hides_secrets"},
                 "a secret appeared in the connector's repr", 0, id="secret-in-repr"),
    pytest.param(SecretInLogs, "secrets or repr", {"test_no_identifiers_or_secrets_in_logs"},
                 "a secret of the settings appeared in a log line", 0, id="secret-in-logs"),
    pytest.param(PendingNeverResolved, JOBS_K, {
        "test_a_deferred_job_ends_when_polled", "test_a_repeated_poll_is_harmless",
        "test_a_job_failing_for_one_item_fails_only_that_item",
        "test_delete_erases_and_find_again_returns_nothing"}, "still PENDING after", 2,
        id="pending-never-resolved"),
]


@pytest.mark.parametrize(("connector", "select", "failing", "says", "polls"), CASES)
def test_contract_suite_fails_exactly_where_the_bug_is(
    pytester: pytest.Pytester, connector: type[MemoryConnector], select: str,
    failing: set[str], says: str, polls: int,
) -> None:
    failed = run_suite(pytester, connector, select, polls)
    assert set(failed) == failing
    for name, message in failed.items():
        assert says in message, f"{name} does not name the bug: {message[-400:]}"


@pytest.mark.parametrize("polls", [0, 2], ids=["at-once", "jobs"])
def test_the_unmodified_connector_passes_every_test(pytester: pytest.Pytester,
                                                     polls: int) -> None:
    assert run_suite(pytester, MemoryConnector, "not nothing", polls) == {}


def test_a_correct_connector_that_declares_less_passes(pytester: pytest.Pytester) -> None:
    assert run_suite(pytester, FindAndExportOnly, "not nothing") == {}
