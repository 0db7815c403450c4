"""Webhook signing and keys, shared by the sender (the notification channel) and receivers (demo, tests); the
contract is written for receivers in docs/webhooks.md, with a runnable receiver in examples/webhook_receiver.py.

Every delivery carries::

    X-Offsetstream-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<delivery id>." + body)>
    X-Offsetstream-Delivery:  <notification id>  (the idempotency key a receiver dedupes on)
    X-Offsetstream-Tenant:    <tenant id>        (which key to verify with, for a receiver of several tenants)

The key is the tenant's own: ``webhook_secrets[tenant]`` when configured, else derived from the master key
``webhook_secret`` as ``hex(HMAC-SHA256(master, "offsetstream webhook key v1:" + tenant))``. So one clinic's
receiver, knowing only its key, can neither forge nor verify another clinic's deliveries, and an operator hands
each clinic its key (``python -m shared.webhook key TENANT``) without storing one per tenant.
"""

import hashlib
import hmac
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import SecretStr

SIGNATURE_HEADER = "X-Offsetstream-Signature"
DELIVERY_HEADER = "X-Offsetstream-Delivery"
TENANT_HEADER = "X-Offsetstream-Tenant"
MAX_SKEW_SECONDS = 300
"""The replay window: a signature whose timestamp is further than this from the receiver's clock is refused."""
MIN_SECRET_LENGTH = 32
PLACEHOLDERS = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "secret",
        "password",
        "local-demo-secret",
        "test-secret",
        "default",
    }
)
_DERIVATION = b"offsetstream webhook key v1:"


class WebhookSecretError(ValueError):
    """A signing secret that must not be used (empty, a placeholder, too short), or none where one is needed.
    Messages name the setting, never the value."""


def signed_content(timestamp: str, delivery_id: str, body: bytes) -> bytes:
    """Exactly the bytes the HMAC covers: ``<t>.<delivery id>.`` then the raw body."""
    return f"{timestamp}.{delivery_id}.".encode() + body


def _mac(key: str, timestamp: str, delivery_id: str, body: bytes) -> str:
    return hmac.new(key.encode(), signed_content(timestamp, delivery_id, body), hashlib.sha256).hexdigest()


def sign(key: str, timestamp: str, delivery_id: str, body: bytes) -> str:
    """The signature header value for a body sent at ``timestamp`` as delivery ``delivery_id``."""
    return f"t={timestamp},v1={_mac(key, timestamp, delivery_id, body)}"


def verify(
    key: str,
    header: str,
    delivery_id: str,
    body: bytes,
    now: float | None = None,
    max_skew: float = MAX_SKEW_SECONDS,
) -> bool:
    """Check a signature header; refuse a timestamp more than ``max_skew`` seconds away (a replayed request)."""
    try:
        parts = dict(item.strip().split("=", 1) for item in header.split(","))
        timestamp, given = parts["t"], parts["v1"]
        skew = abs((time.time() if now is None else now) - int(timestamp))
    except (KeyError, ValueError):
        return False
    return skew <= max_skew and hmac.compare_digest(_mac(key, timestamp, delivery_id, body), given)


def tenant_key(master: str, tenant: str) -> str:
    """The signing key of ``tenant`` derived from the master key."""
    return hmac.new(master.encode(), _DERIVATION + tenant.encode(), hashlib.sha256).hexdigest()


def weakness(value: str) -> str | None:
    """Why a secret must not be used, or None when it may."""
    if not value.strip():
        return "it is empty"
    if value.strip().lower() in PLACEHOLDERS:
        return "it is a placeholder"
    if len(value) < MIN_SECRET_LENGTH:
        return f"it is shorter than {MIN_SECRET_LENGTH} characters"
    return None


@dataclass(frozen=True)
class WebhookKeys:
    """Which key signs a tenant's deliveries: its own when listed, else derived from the master key."""

    master: SecretStr | None = None
    per_tenant: Mapping[str, SecretStr] = field(default_factory=dict)
    _derived: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    """Tenant keys derived so far: the derivation (an HMAC) ran once per request, 1 % of notification's CPU
    on the bench; a key never changes while the process runs. Never in ``repr``."""

    def check(self) -> None:
        """Refuse weak secrets (raises :class:`WebhookSecretError`)."""
        if self.master is not None and (why := weakness(self.master.get_secret_value())):
            raise WebhookSecretError(
                f"OFFSETSTREAM_WEBHOOK_SECRET cannot sign webhooks: {why}; generate one with "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        for tenant, secret in self.per_tenant.items():
            if why := weakness(secret.get_secret_value()):
                raise WebhookSecretError(
                    f"OFFSETSTREAM_WEBHOOK_SECRETS[{tenant!r}] cannot sign webhooks: {why}"
                )

    def has_key(self, tenant: str | None) -> bool:
        """True when ``tenant`` (None: any tenant) has a key."""
        return self.master is not None or (tenant is not None and tenant in self.per_tenant)

    def key(self, tenant: str) -> str | None:
        """The signing key of ``tenant``; None when it has none."""
        if tenant in self.per_tenant:
            return self.per_tenant[tenant].get_secret_value()
        if self.master is None:
            return None
        if (derived := self._derived.get(tenant)) is None:
            derived = self._derived[tenant] = tenant_key(self.master.get_secret_value(), tenant)
        return derived


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.webhook key TENANT``: print the key to hand to that tenant's receiver."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "key":
        print("usage: python -m shared.webhook key TENANT", file=sys.stderr)  # noqa: T201 - a command
        return 2
    from shared.settings import Settings

    settings = Settings()
    keys = WebhookKeys(settings.webhook_secret, settings.webhook_secrets)
    keys.check()
    key = keys.key(args[1])
    if key is None:
        print("no key: set OFFSETSTREAM_WEBHOOK_SECRET or OFFSETSTREAM_WEBHOOK_SECRETS", file=sys.stderr)  # noqa: T201
        return 1
    print(key)  # noqa: T201 - the command's output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
