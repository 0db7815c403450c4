"""Kafka logins and ACLs as data: every client's options come from the settings, and each principal's rights
from the topic registry (the real broker enforcing them: tests/integration/test_kafka_acl.py)."""

import ssl

import pytest

from contracts.topics import TOPICS, all_topic_names, dlt_name
from shared import kafka_security
from shared.kafka_security import (
    ADMIN,
    OPERATOR,
    AclBinding,
    KafkaCredentialsMissing,
    acl_bindings,
    client_kwargs,
    consumed,
    faust_credentials,
)
from shared.settings import SERVICES, Settings

INTAKE = "remit.intake.v1"


def _rights(principal: str, operation: str) -> set[str]:
    return {
        b.name
        for b in acl_bindings()
        if b.principal == principal
        and b.resource == "topic"
        and b.pattern == "literal"
        and b.operation == operation
    }


def test_only_intake_reads_the_raw_payer_files() -> None:
    readers = {b.principal for b in acl_bindings() if b.name == INTAKE and b.operation in {"read", "all"}}
    assert readers == {"intake"}
    assert INTAKE in _rights(OPERATOR, "write"), "the command line publishes payer files"
    assert not any(b.pattern == "prefixed" and INTAKE.startswith(b.name) for b in acl_bindings())


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_reads_what_it_consumes_and_writes_what_it_produces(service: str) -> None:
    inputs = consumed(service)
    assert _rights(service, "read") == set(inputs)
    produced = {t.name for t in TOPICS if service in t.producers}
    assert _rights(service, "write") == produced | {dlt_name(name) for name in inputs}
    assert _rights(service, "write") <= set(all_topic_names()), "every topic written exists"
    groups = {b.name for b in acl_bindings() if b.principal == service and b.resource == "group"}
    assert groups == {f"offsetstream-{service}"}
    internal = {
        (b.name, b.operation) for b in acl_bindings() if b.principal == service and b.pattern == "prefixed"
    }
    assert {name for name, _ in internal} == {f"offsetstream-{service}-"}, "faust's own topics only"


def test_notification_reads_its_outbound_topic_but_no_raw_file() -> None:
    assert "remit.notifications.v1" in _rights("notification", "read")
    assert INTAKE not in _rights("notification", "read")
    assert "remit.receivables.v1" not in _rights("notification", "write")


def test_the_operator_reads_dead_letters_and_replays_them_but_writes_no_stage_output() -> None:
    dead_letters = {name for name in all_topic_names() if name.endswith(".dlt")}
    assert dead_letters <= _rights(OPERATOR, "read")
    assert INTAKE not in _rights(OPERATOR, "read")
    fed = {name for service in SERVICES for name in consumed(service)}
    assert _rights(OPERATOR, "write") == fed | {t.name for t in TOPICS if "cli" in t.producers}
    assert not _rights(OPERATOR, "write") & {"remit.remittances.v1", "remit.offsets.v1"} - fed
    assert set(all_topic_names()) - dead_letters <= _rights(OPERATOR, "describe") | dead_letters


def test_the_console_writes_staff_events_and_replay_requests_and_reads_nothing() -> None:
    assert _rights("console", "write") == {
        "remit.letters.v1",
        "remit.staff-actions.v1",
        "remit.work-items.v1",
        "remit.file-replays.v1",
    }
    assert not _rights("console", "read"), "no dead letter (payer data) nor anything else"
    assert not [b for b in acl_bindings() if b.principal == "console" and b.resource != "topic"]
    assert "remit.file-replays.v1" in _rights("intake", "read")
    assert "remit.file-replays.v1" in _rights(OPERATOR, "write")


def test_the_super_user_needs_no_rule_and_every_rule_is_an_allow_of_a_known_principal() -> None:
    rules = acl_bindings()
    assert all(b.principal in kafka_security.PRINCIPALS and b.principal != ADMIN for b in rules)
    assert all(b.operation != "all" for b in rules), "no blanket rights"
    assert len(rules) == len(set(rules))
    assert AclBinding("intake", "topic", INTAKE, "read").kafka_principal == "User:intake"


def test_a_sasl_client_without_a_login_is_refused_with_the_variables_to_set() -> None:
    with pytest.raises(
        KafkaCredentialsMissing, match="OFFSETSTREAM_KAFKA_USERNAME and OFFSETSTREAM_KAFKA_PASSWORD"
    ):
        client_kwargs(Settings(kafka_username="intake"))
    with pytest.raises(KafkaCredentialsMissing):
        client_kwargs(Settings(kafka_password="secret-but-whose"))


def test_a_login_becomes_scram_options_and_the_password_stays_secret() -> None:
    settings = Settings(kafka_bootstrap="kafka:9092", kafka_username="matching", kafka_password="pw-123")
    assert "pw-123" not in repr(settings)
    assert client_kwargs(settings) == {
        "bootstrap_servers": "kafka:9092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "matching",
        "sasl_plain_password": "pw-123",
    }
    tls = client_kwargs(settings.model_copy(update={"kafka_security_protocol": "SASL_SSL"}))
    assert tls["security_protocol"] == "SASL_SSL"
    assert isinstance(tls["ssl_context"], ssl.SSLContext)


def test_plaintext_only_when_asked_for() -> None:
    assert Settings().kafka_security_protocol == "SASL_PLAINTEXT"
    plain = Settings(kafka_security_protocol="PLAINTEXT")
    assert client_kwargs(plain) == {
        "bootstrap_servers": plain.kafka_bootstrap,
        "security_protocol": "PLAINTEXT",
    }
    assert faust_credentials(plain) is None


def test_a_faust_app_without_a_login_builds_but_fails_at_its_first_connection() -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    credentials = faust_credentials(Settings())
    with pytest.raises(KafkaCredentialsMissing):
        credentials_to_aiokafka_auth(credentials)
    good = faust_credentials(Settings(kafka_username="interest", kafka_password="pw"))
    assert credentials_to_aiokafka_auth(good) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "interest",
        "sasl_plain_password": "pw",
        "ssl_context": None,
    }
