"""The connector contract suite catches real connector bugs.

Each bug below passed the earlier suite, which seeded one email per subject. Here it is
planted in a MemoryConnector subclass, and pytester runs the whole suite (as
tests/test_memory_contract.py configures it) against that subclass: exactly the listed
contract tests must fail. The unmodified MemoryConnector passes them all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import pytest

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
)
from erasure.testing import MemoryConnector


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


SUITE = """
from test_contract_catches_bugs import {name}
from test_memory_contract import MemorySeeding


class TestPlanted(MemorySeeding):
    connector_class = {name}
"""

BATCHES_OVER_TWO = {"test_delete_in_batches[3]", "test_delete_in_batches[50]"}
ACTIONS = {
    "test_delete_erases_and_find_again_returns_nothing",
    *(f"test_delete_in_batches[{n}]" for n in (1, 2, 3, 50)),
    "test_anonymise_touches_only_the_subject[one_item]",
    "test_anonymise_touches_only_the_subject[several_items]",
    "test_restrict_touches_only_the_subject[one_item]",
    "test_restrict_touches_only_the_subject[several_items]",
    "test_rectify_refused_unless_declared",
    "test_object_to_refused_unless_declared",
}


def run_suite(pytester: pytest.Pytester, connector: type[MemoryConnector]) -> set[str]:
    """Run the contract suite against ``connector``; the names of the tests that failed."""
    pytester.makepyfile(test_planted=SUITE.format(name=connector.__name__))
    result = pytester.inline_run("-p", "no:cacheprovider")
    passed, _skipped, failed = result.listoutcomes()
    assert len(passed) + len(failed) >= 15, "the suite did not run"
    return {r.nodeid.rsplit("::", 1)[1] for r in failed}


@pytest.mark.parametrize(
    ("connector", "failing"),
    [
        pytest.param(MemoryConnector, set(), id="unmodified"),
        # The whole-batch delete test deletes Bob's two items: (a) needs three or more.
        pytest.param(DeleteLeavesOneBehind, BATCHES_OVER_TWO, id="a-delete-leaves-one"),
        pytest.param(ExportsSomeoneElse, {"test_export_returns_exactly_each_subjects_data"},
                     id="b-export-someone-else"),
        pytest.param(RestrictFlagsEveryone, {"test_restrict_touches_only_the_subject[one_item]"},
                     id="c-restrict-flags-everyone"),
        pytest.param(RectifiesWithAnyonesCorrection,
                     {"test_rectify_batch_gives_each_subject_its_own"},
                     id="d-rectify-with-anyones-correction"),
        pytest.param(ObjectionDeletes, {
            "test_object_to_marketing_opts_out_only_the_subject[one_item]",
            "test_object_to_marketing_opts_out_only_the_subject[several_items]",
            "test_second_object_to_is_harmless",
            "test_object_to_a_scope_it_cannot_honour_says_so"}, id="e-objection-deletes"),
        pytest.param(ActsWithoutDeclaring, ACTIONS, id="undeclared-actions-not-refused"),
        pytest.param(FindAndExportOnly, set(), id="find-and-export-only"),
    ],
)
def test_contract_suite_fails_exactly_where_the_bug_is(
    pytester: pytest.Pytester, connector: type[MemoryConnector], failing: set[str]
) -> None:
    assert run_suite(pytester, connector) == failing
