"""Which receivable each piece of evidence of a batch belongs to, decided in pure code over what was loaded.

Detection is the one owner of receivable identity (docs/architecture.md §6): evidence naming no known identifier
opens a receivable under its own reference; naming one receivable's, it joins it; naming several, it merges them
into the survivor (:func:`domain.survivor`). The engine loads everything a batch's evidence can reach in a
constant number of queries (:class:`Snapshot`), :func:`place_all` replays the evidence in order against it
exactly as one item at a time would (a merge early in the batch is seen by the evidence after it), and the
store writes the end state once (:class:`Placement`): each receivable row once, each moved evidence row once.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from uuid import UUID

from contracts.money import to_money
from services.detection import domain
from shared.ids import receivable_id

Key = tuple[str, UUID]
"""(tenant, receivable id)."""


@dataclass(frozen=True, slots=True)
class Alias:
    """One identifier (a reference or payer claim number) a receivable of an account is known by."""

    tenant_id: str
    account_key: str
    key: str
    receivable_id: UUID


@dataclass(frozen=True, slots=True)
class DetectedReceivable:
    """One ``detection.receivables`` row: the merged view of a debt (``merged_into``: the survivor it was
    merged into, None while it lives)."""

    tenant_id: str
    receivable_id: UUID
    account_key: str
    payer_id: str
    reference: str
    policy: str
    principal: Decimal
    determination_date: date
    merged_into: UUID | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the database knows that a batch's evidence can reach, read under the accounts' locks: which of
    its evidence ids are recorded, the aliases of the identifiers it names, and the receivables (with their
    evidence) those aliases or its own references lead to."""

    recorded: frozenset[UUID]
    aliases: tuple[Alias, ...]
    receivables: Mapping[Key, DetectedReceivable]
    evidence: Mapping[Key, tuple[domain.KnownEvidence, ...]]


@dataclass(frozen=True, slots=True)
class Item:
    """The evidence one input found, with what recording it needs to know."""

    tenant_id: str
    account_key: str
    payer_id: str
    policy: str
    evidence: tuple[domain.Evidence, ...]


@dataclass(frozen=True, slots=True)
class Placed:
    """Evidence recorded for ``receivable_id``, which it proved to be the same debt as ``absorbed``, and the
    receivable's principal and day 0 after it."""

    evidence: domain.Evidence
    receivable_id: UUID
    absorbed: tuple[UUID, ...]
    principal: Decimal
    determination_date: date


@dataclass(frozen=True, slots=True)
class Placement:
    """What a batch's evidence did: per item, the evidence placed (in order; evidence already recorded is not
    there), and the end state to write."""

    placed: tuple[tuple[Placed, ...], ...]
    new_evidence: tuple[tuple[str, UUID, domain.Evidence], ...]
    """(tenant, receivable it ends under, evidence)."""
    moved: tuple[tuple[str, UUID, UUID], ...]
    """(tenant, absorbed receivable, survivor it ends under): its recorded evidence and aliases move there."""
    new_aliases: tuple[Alias, ...]
    rows: tuple[DetectedReceivable, ...]
    """Receivable rows new or changed, in their end state."""


def place_all(snapshot: Snapshot, items: Sequence[Item]) -> Placement:
    """Place every item's evidence in order, as :meth:`Detector._record` did one evidence at a time."""
    recorded = set(snapshot.recorded)
    owners: dict[tuple[str, str, str], set[UUID]] = {}
    for a in snapshot.aliases:
        owners.setdefault((a.tenant_id, a.account_key, a.key), set()).add(a.receivable_id)
    rows = dict(snapshot.receivables)
    evidence: dict[Key, list[tuple[domain.KnownEvidence, domain.Evidence | None]]] = {
        key: [(k, None) for k in known] for key, known in snapshot.evidence.items()
    }
    added: set[Alias] = set()
    merged: dict[Key, UUID] = {}
    placed: list[tuple[Placed, ...]] = []
    for item in items:
        done: list[Placed] = []
        tenant, account = item.tenant_id, item.account_key
        for ev in item.evidence:
            if ev.evidence_id in recorded:
                continue
            keys = domain.identity_keys(ev)
            found = {
                rows[tenant, rid]
                for k in keys
                for rid in owners.get((tenant, account, k), ())
                if (tenant, rid) in rows and rows[tenant, rid].merged_into is None
            }
            absorbed: tuple[UUID, ...] = ()
            if not found:
                rid = receivable_id(tenant, item.payer_id, ev.reference)
            else:
                keep = domain.survivor(
                    domain.KnownReceivable(r.receivable_id, r.reference, r.determination_date) for r in found
                )
                rid = keep.receivable_id
                absorbed = tuple(sorted((r.receivable_id for r in found if r.receivable_id != rid), key=str))
                for other in absorbed:
                    evidence.setdefault((tenant, rid), []).extend(evidence.pop((tenant, other), []))
                    for holders in owners.values():
                        if other in holders:
                            holders.discard(other)
                            holders.add(rid)
                    added = {replace(a, receivable_id=rid) if a.receivable_id == other else a for a in added}
                    rows[tenant, other] = replace(rows[tenant, other], merged_into=rid)
                    merged[tenant, other] = rid
            for k in keys:
                owners.setdefault((tenant, account, k), set()).add(rid)
                added.add(Alias(tenant, account, k, rid))
            recorded.add(ev.evidence_id)
            known = evidence.setdefault((tenant, rid), [])
            known.append((domain.KnownEvidence(ev.channel, ev.subject, ev.amount, ev.evidence_date), ev))
            principal = to_money(domain.merged_principal((k.channel, k.subject, k.amount) for k, _ in known))
            determined = domain.determination_date((k.channel, k.evidence_date) for k, _ in known)
            before = rows.get((tenant, rid))
            rows[tenant, rid] = (
                DetectedReceivable(
                    tenant, rid, account, item.payer_id, ev.reference, item.policy, principal, determined
                )
                if before is None
                else replace(before, principal=principal, determination_date=determined)
            )
            done.append(Placed(ev, rid, absorbed, principal, determined))
        placed.append(tuple(done))
    return Placement(
        placed=tuple(placed),
        new_evidence=tuple(
            (tenant, rid, ev) for (tenant, rid), known in evidence.items() for _, ev in known if ev is not None
        ),
        moved=tuple((tenant, other, _end(merged, tenant, other)) for (tenant, other) in merged),
        new_aliases=tuple(sorted(added, key=lambda a: (a.tenant_id, a.account_key, a.key, str(a.receivable_id)))),
        rows=tuple(
            row for key, row in sorted(rows.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))
            if snapshot.receivables.get(key) != row
        ),
    )  # fmt: skip


def _end(merged: Mapping[Key, UUID], tenant: str, rid: UUID) -> UUID:
    """The survivor a receivable merged in this batch ends under (merges can chain within a batch)."""
    while (tenant, rid) in merged:
        rid = merged[tenant, rid]
    return rid


@dataclass(frozen=True, slots=True)
class Wanted:
    """What to read for a batch's evidence: the accounts to lock (sorted, so two workers never deadlock), its
    evidence ids, the (tenant, account, identifier) it names, and the receivables its references would open."""

    accounts: tuple[tuple[str, str], ...]
    evidence_ids: tuple[tuple[str, UUID], ...]
    named: tuple[tuple[str, str, str], ...]
    opened: tuple[Key, ...]


def wanted(items: Sequence[Item]) -> Wanted:
    """What :func:`place_all` may need to know about these items' evidence."""
    with_evidence = [item for item in items if item.evidence]
    return Wanted(
        accounts=tuple(sorted({(i.tenant_id, i.account_key) for i in with_evidence})),
        evidence_ids=tuple(sorted({(i.tenant_id, ev.evidence_id) for i in items for ev in i.evidence}, key=str)),
        named=tuple(
            sorted({(i.tenant_id, i.account_key, k) for i in items for ev in i.evidence for k in domain.identity_keys(ev)})
        ),
        opened=tuple(
            sorted(
                {(i.tenant_id, receivable_id(i.tenant_id, i.payer_id, ev.reference)) for i in items for ev in i.evidence},
                key=str,
            )
        ),
    )  # fmt: skip
