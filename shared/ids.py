"""Deterministic identifiers: the basis of exactly-once *effect* over at-least-once delivery.

Every event id is a UUIDv5 of the source document identity, the position in it and the event type, so the
same input always yields the same ids, and every sink can ``INSERT … ON CONFLICT DO NOTHING``.
"""

import hashlib
from uuid import UUID, uuid5

NAMESPACE = UUID("6f1b3c2e-8d4a-5b7e-9c0f-0a1b2c3d4e5f")


def stable_id(*parts: object) -> UUID:
    """UUIDv5 of the parts joined with a separator that cannot occur in X12 identifiers."""
    return uuid5(NAMESPACE, "\x1f".join(str(p) for p in parts))


def account_key(tenant_id: str, payer_id: str, payee_id: str) -> str:
    """Opaque partition key of one provider–payer account; never reveals the identifiers it hashes."""
    digest = hashlib.sha256(f"{tenant_id}\x1f{payer_id}\x1f{payee_id}".encode())
    return digest.hexdigest()[:32]


def receivable_id(tenant_id: str, payer_id: str, reference: str) -> UUID:
    """One receivable per (tenant, payer, reference): all evidence about it lands on the same id."""
    return stable_id("receivable", tenant_id, payer_id, reference)
