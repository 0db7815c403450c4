"""Issue 16 (webhooks a security team would accept): secrets never shown, weak or missing keys refused at
start-up, one key per tenant, and the documented receiver (examples/webhook_receiver.py) agreeing with the
sender byte for byte."""

import json
import time
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import SecretStr

from examples import webhook_receiver as example
from services.notification.channels import (
    EmailChannel,
    SmtpSecurityError,
    WebhookChannel,
    check_webhook_keys,
    webhook_tenants,
)
from shared import webhook
from shared.settings import Settings
from shared.webhook import WebhookKeys, WebhookSecretError, sign, tenant_key, verify

MASTER = "unit-test-webhook-master-key-0000000001"
CLINIC_KEY = "clinic-a-key-supplied-by-the-clinic-00001"


def test_secrets_are_never_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFSETSTREAM_WEBHOOK_SECRET", MASTER)
    monkeypatch.setenv("OFFSETSTREAM_WEBHOOK_SECRETS", json.dumps({"clinic-a": CLINIC_KEY}))
    monkeypatch.setenv("OFFSETSTREAM_NOTIFICATION_SMTP_PASSWORD", "smtp-password-value")
    settings = Settings()
    for shown in (repr(settings), str(settings), repr(settings.model_dump())):
        assert MASTER not in shown and CLINIC_KEY not in shown and "smtp-password-value" not in shown
    assert isinstance(settings.webhook_secret, SecretStr)
    assert settings.webhook_secrets["clinic-a"].get_secret_value() == CLINIC_KEY
    assert settings.notification_smtp_starttls, "STARTTLS is on unless turned off"


def test_there_is_no_default_secret() -> None:
    assert Settings().webhook_secret is None
    assert Settings().webhook_secrets == {}


@pytest.mark.parametrize("secret", ["", "   ", "change-me", "CHANGE-ME", "local-demo-secret", "short-key"])
def test_weak_secrets_stop_the_service(secret: str) -> None:
    settings = Settings(webhook_url="https://clinic.example/hook", webhook_secret=secret)
    with pytest.raises(WebhookSecretError, match="OFFSETSTREAM_WEBHOOK_SECRET cannot sign") as refused:
        WebhookChannel().configure(settings)
    assert secret.strip() == "" or secret not in str(refused.value), "the message never shows the value"


def test_a_weak_per_tenant_secret_stops_the_service() -> None:
    settings = Settings(webhook_secret=MASTER, webhook_secrets={"clinic-a": "change-me"})
    with pytest.raises(WebhookSecretError, match=r"WEBHOOK_SECRETS\['clinic-a'\]"):
        check_webhook_keys(settings)


def test_webhooks_without_a_key_stop_the_service() -> None:
    with pytest.raises(WebhookSecretError, match="OFFSETSTREAM_WEBHOOK_SECRET is not set"):
        WebhookChannel().configure(Settings(webhook_url="https://clinic.example/hook"))


def test_no_webhook_route_needs_no_key() -> None:
    channel = WebhookChannel()
    channel.configure(Settings())  # e-mail only, or nothing: starts without a key
    assert channel.keys.key("clinic-a") is None


def test_routes_naming_tenants_need_a_key_for_each(tmp_path: Path) -> None:
    routes = tmp_path / "routes.json"
    routes.write_text(
        json.dumps(
            {
                "default": [{"channel": "email", "target": "ar@billing.example"}],
                "tenants": {
                    "clinic-a": {"*": [{"channel": "webhook", "target": "https://a.example/hook"}]},
                    "clinic-b": {"offset_applied": [{"channel": "webhook", "target": "https://b.example/h"}]},
                    "clinic-c": {"*": [{"channel": "email", "target": "ar@c.example"}]},
                },
            }
        )
    )
    assert webhook_tenants(Settings(notification_routes=routes)) == {"clinic-a", "clinic-b"}
    with pytest.raises(WebhookSecretError, match=r"\['clinic-b'\]"):
        check_webhook_keys(Settings(notification_routes=routes, webhook_secrets={"clinic-a": CLINIC_KEY}))
    both = {"clinic-a": CLINIC_KEY, "clinic-b": CLINIC_KEY[::-1]}
    check_webhook_keys(Settings(notification_routes=routes, webhook_secrets=both))
    check_webhook_keys(Settings(notification_routes=routes, webhook_secret=MASTER))


def test_each_tenant_has_its_own_key() -> None:
    keys = WebhookKeys(SecretStr(MASTER), {"clinic-a": SecretStr(CLINIC_KEY)})
    assert keys.key("clinic-a") == CLINIC_KEY
    assert keys.key("clinic-b") == tenant_key(MASTER, "clinic-b")
    assert keys.key("clinic-b") != keys.key("clinic-c") != MASTER
    assert WebhookKeys(None, {"clinic-a": SecretStr(CLINIC_KEY)}).key("clinic-b") is None


def test_the_key_command_prints_a_tenants_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OFFSETSTREAM_WEBHOOK_SECRET", MASTER)
    assert webhook.main(["key", "clinic-b"]) == 0
    assert capsys.readouterr().out.strip() == tenant_key(MASTER, "clinic-b")
    assert webhook.main(["nonsense"]) == 2


def test_a_login_is_only_sent_over_tls() -> None:
    with pytest.raises(SmtpSecurityError):
        EmailChannel().configure(Settings(notification_smtp_username="u", notification_smtp_starttls=False))
    channel = EmailChannel()
    channel.configure(Settings(notification_smtp_username="u", notification_smtp_password="p"))
    assert channel.starttls and channel.password is not None


# --- the documented receiver agrees with the sender ------------------------------------------------------------


def delivery(tenant: str = "clinic-a", sent_at: float | None = None) -> tuple[dict[str, str], bytes, str]:
    nid = str(uuid4())
    body = json.dumps({"tenant_id": tenant, "payload": {"kind": "offset_applied"}}).encode()
    timestamp = str(int(time.time() if sent_at is None else sent_at))
    headers = {
        webhook.SIGNATURE_HEADER: sign(tenant_key(MASTER, tenant), timestamp, nid, body),
        webhook.DELIVERY_HEADER: nid,
        webhook.TENANT_HEADER: tenant,
    }
    return headers, body, nid


def test_the_example_verifies_what_the_sender_signs() -> None:
    headers, body, nid = delivery()
    key, signature = tenant_key(MASTER, "clinic-a"), headers[webhook.SIGNATURE_HEADER]
    assert example.verify(key, signature, nid, body)
    assert verify(key, signature, nid, body)
    assert (example.SIGNATURE_HEADER, example.DELIVERY_HEADER, example.TENANT_HEADER) == (
        webhook.SIGNATURE_HEADER,
        webhook.DELIVERY_HEADER,
        webhook.TENANT_HEADER,
    )
    assert example.REPLAY_WINDOW_SECONDS == webhook.MAX_SKEW_SECONDS
    assert not example.verify(key, signature, nid, body + b" ")
    assert not example.verify(key, signature, str(uuid4()), body)
    assert not example.verify(tenant_key(MASTER, "clinic-b"), signature, nid, body)
    assert not example.verify(key, "t=abc,v1=00", nid, body)
    assert not example.verify(key, "", nid, body)


def test_the_example_enforces_the_replay_window() -> None:
    sent_at = 1_790_000_000
    headers, body, nid = delivery(sent_at=sent_at)
    key, signature = tenant_key(MASTER, "clinic-a"), headers[webhook.SIGNATURE_HEADER]
    assert example.verify(key, signature, nid, body, now=sent_at + 300)
    assert not example.verify(key, signature, nid, body, now=sent_at + 301)
    assert not example.verify(key, signature, nid, body, now=sent_at - 301)  # from a clock far ahead


def test_the_example_receiver_answers_as_documented() -> None:
    key, seen = tenant_key(MASTER, "clinic-a"), example.SeenDeliveries()
    headers, body, _ = delivery()
    assert example.handle(key, "clinic-a", seen, headers, body) == 204
    assert example.handle(key, "clinic-a", seen, headers, body) == 200  # a resend: acknowledged, ignored
    fresh, fresh_body, _ = delivery()
    lower = {k.lower(): v for k, v in fresh.items()}  # header names are case-insensitive (HTTP/2, proxies)
    assert example.handle(key, "clinic-a", seen, lower, fresh_body.replace(b"offset", b"Offset")) == 401
    assert example.handle(key, "clinic-a", seen, lower, fresh_body) == 204
    other_headers, other_body, _ = delivery("clinic-b")
    other_headers[webhook.SIGNATURE_HEADER] = sign(
        key, str(int(time.time())), other_headers[webhook.DELIVERY_HEADER], other_body
    )
    assert example.handle(key, "clinic-a", seen, other_headers, other_body) == 403  # not this clinic's
    stale, stale_body, _ = delivery(sent_at=time.time() - 3600)
    assert example.handle(key, "clinic-a", seen, stale, stale_body) == 401
