"""Kafka authentication and authorization, in one place (docs/security.md "Kafka").

Every Kafka client of offsetstream — the five faust apps, the CLI's producers, consumers and admin clients, the
lag monitor, the benchmark and the tests — gets its connection options from :func:`client_kwargs` (aiokafka) or
:func:`faust_credentials` (faust), so the broker's security is configured once, from the settings:

- ``kafka_security_protocol``: ``SASL_PLAINTEXT`` (default) or ``SASL_SSL``; ``PLAINTEXT`` (no authentication)
  only when set explicitly, for a developer's own broker.
- ``kafka_sasl_mechanism``: ``SCRAM-SHA-512`` (default) or ``SCRAM-SHA-256``.
- ``kafka_username`` / ``kafka_password``: the principal of this process. No default: a SASL client without them
  refuses to start, naming the variables to set (:class:`KafkaCredentialsMissing`).

Each service runs as its own principal (``User:<service>``), the command line as ``User:operator`` and topic/ACL
administration as ``User:admin`` (the broker's super user). :func:`acl_bindings` derives what each principal may
do from the topic registry (``contracts.topics``): read only the topics it consumes, write only the ones it
produces (and the dead-letter topics of its inputs), its own consumer group and faust's internal topics. The raw
payer files (``remit.intake.v1``) are therefore readable by intake alone. ``python -m shared.kafka_security acls``
creates the bindings (the compose deployment's ``kafka-acls`` one-shot; the local broker of ``make run`` and the
tests does the same at start-up).
"""

import asyncio
import ssl
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest, CreateAclsRequestStruct

from contracts.topics import TOPICS, dlt_name
from shared.settings import SERVICES, Settings, get_settings

ADMIN = "admin"
"""The broker's super user: creates topics and ACLs (``offsetstream topics create``, this module's ``acls``)."""
OPERATOR = "operator"
"""The command line of staff and operators: ingest, letters, staff actions and work-queue steps, dead letters,
consumer lag."""
CONSOLE = "console"
"""The staff console (services/console): publishes staff actions, letters and work-queue steps for its logged-in
users, reads nothing from Kafka (it reads the ledger's staff views)."""
PRINCIPALS = (ADMIN, OPERATOR, CONSOLE, *SERVICES)

CLI_PRODUCER = "cli"  # the producer name contracts.topics gives the command line
OWN_OUTBOUND = {"notification": ("remit.notifications.v1",)}
"""Topics a service consumes though the registry lists no consumer: notification delivers what it publishes on
its outbound topic (services/notification/app.py, agent ``deliver``)."""


class KafkaCredentialsMissing(RuntimeError):
    """A SASL connection was configured without a username or password."""


def group_id(service: str) -> str:
    """The faust app id of a service: its consumer group and the prefix of its internal topics."""
    return f"offsetstream-{service}"


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    return ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )


def _login(settings: Settings) -> tuple[str, str]:
    username = settings.kafka_username
    password = settings.kafka_password.get_secret_value() if settings.kafka_password else ""
    if not username or not password:
        raise KafkaCredentialsMissing(
            f"Kafka at {settings.kafka_bootstrap} needs a login ({settings.kafka_security_protocol}, "
            f"{settings.kafka_sasl_mechanism}): set OFFSETSTREAM_KAFKA_USERNAME and OFFSETSTREAM_KAFKA_PASSWORD "
            'to this process\'s principal (docs/security.md "Kafka"); only a broker without authentication '
            "may be used with OFFSETSTREAM_KAFKA_SECURITY_PROTOCOL=PLAINTEXT"
        )
    return username, password


def security_kwargs(settings: Settings) -> dict[str, Any]:
    """The security options of an aiokafka client (producer, consumer or admin) for these settings."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {"security_protocol": "PLAINTEXT"}
    username, password = _login(settings)
    kwargs: dict[str, Any] = {
        "security_protocol": protocol,
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": username,
        "sasl_plain_password": password,
    }
    if protocol == "SASL_SSL":
        kwargs["ssl_context"] = _ssl_context(settings)
    return kwargs


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """``bootstrap_servers`` plus the security options: ``AIOKafkaProducer(**client_kwargs(s), acks=...)``."""
    return {"bootstrap_servers": settings.kafka_bootstrap, **security_kwargs(settings)}


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` of a faust app (None for an explicitly unauthenticated broker).

    Without a login the app is still built (importing a service must work for unit tests and ``--help``), but
    its first connection raises :class:`KafkaCredentialsMissing`, so the worker stops at start-up saying what
    to set."""
    import faust

    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    try:
        username, password = _login(settings)
    except KafkaCredentialsMissing as missing:
        return _missing_login(faust.SASLCredentials, str(missing))
    return faust.SASLCredentials(
        username=username,
        password=password,
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=_ssl_context(settings) if settings.kafka_security_protocol == "SASL_SSL" else None,
    )


def _missing_login(base: type[Any], problem: str) -> Any:
    """Credentials whose use (faust reads ``username`` when it builds a client) raises ``problem``."""

    class MissingLogin(base):  # type: ignore[misc]
        def __init__(self) -> None:
            self.ssl_context = None

        @property
        def username(self) -> str:
            raise KafkaCredentialsMissing(problem)

        def __repr__(self) -> str:
            return "<SASLCredentials: no login configured>"

    return MissingLogin()


# --- authorization ----------------------------------------------------------------------------------------------

# Kafka's wire codes (org.apache.kafka.common.resource / acl): resource type, pattern type, operation, permission.
_RESOURCE = {"topic": 2, "group": 3, "cluster": 4, "transactional_id": 5}
_PATTERN = {"literal": 3, "prefixed": 4}
_OPERATION = {
    "all": 2,
    "read": 3,
    "write": 4,
    "create": 5,
    "delete": 6,
    "alter": 7,
    "describe": 8,
    "describe_configs": 10,
    "idempotent_write": 12,
}
_ALLOW = 3


@dataclass(frozen=True, order=True)
class AclBinding:
    """One ALLOW rule: ``principal`` may ``operation`` on a resource (a name, or every name with a prefix)."""

    principal: str
    resource: str  # topic | group | cluster | transactional_id
    name: str
    operation: str
    pattern: str = "literal"  # literal | prefixed

    @property
    def kafka_principal(self) -> str:
        """As Kafka names it: ``User:<name>``."""
        return f"User:{self.principal}"


def consumed(service: str) -> list[str]:
    """Topics a service reads: the registry's consumers, plus its own outbound topic for notification."""
    return [t.name for t in TOPICS if service in t.consumers] + list(OWN_OUTBOUND.get(service, ()))


def _topic_rules(principal: str, topics: Iterable[str], operations: Sequence[str]) -> list[AclBinding]:
    return [AclBinding(principal, "topic", name, op) for name in topics for op in operations]


def acl_bindings() -> list[AclBinding]:
    """Every ALLOW rule of every principal but the super user (who needs none), from the topic registry.

    Service: Read the topics it consumes; Write the topics it produces and the dead-letter topics of its inputs
    (shared.stream dead-letters a bad input to ``<input>.dlt``); Read its consumer group; Create/Describe/Read/
    Write faust's internal topics, which carry the app id as prefix (``offsetstream-<service>-__assignor-__leader``).
    Operator: Write the topics the command line produces and, to replay dead letters, every consumed topic;
    Read every dead-letter topic and the sources of their records except the raw payer files (a dead letter of
    intake names the stored file instead); Describe every topic and the stages' groups (consumer lag).
    Console: Write (and Describe) only the topics the registry lists it as producing (letters, staff actions,
    work-item actions): every change staff make in the console is one of those events, which the stages apply."""
    rules: list[AclBinding] = []
    for service in SERVICES:
        inputs = consumed(service)
        outputs = [t.name for t in TOPICS if service in t.producers]
        outputs += [dlt_name(name) for name in inputs]
        rules += _topic_rules(service, inputs, ("read", "describe"))
        rules += _topic_rules(service, dict.fromkeys(outputs), ("write", "describe"))
        rules.append(AclBinding(service, "group", group_id(service), "read"))
        rules += [
            AclBinding(service, "topic", f"{group_id(service)}-", op, "prefixed")
            for op in ("create", "describe", "read", "write", "describe_configs")
        ]
    feeds = sorted({name for service in SERVICES for name in consumed(service)})
    dead_letters = sorted({dlt_name(name) for name in feeds})
    written = sorted({*feeds, *(t.name for t in TOPICS if CLI_PRODUCER in t.producers)})
    rules += _topic_rules(OPERATOR, written, ("write",))
    readable = [*dead_letters, *(name for name in feeds if name != "remit.intake.v1")]
    rules += _topic_rules(OPERATOR, readable, ("read",))
    rules += _topic_rules(OPERATOR, sorted({*written, *readable, *(t.name for t in TOPICS)}), ("describe",))
    rules.append(AclBinding(OPERATOR, "group", "offsetstream-", "describe", "prefixed"))
    rules += _topic_rules(CONSOLE, [t.name for t in TOPICS if CONSOLE in t.producers], ("write", "describe"))
    return sorted(set(rules))


class _CreateAcls(CreateAclsRequest):  # type: ignore[misc]
    """CreateAcls with many creations in one request (aiokafka's request carries one)."""

    def __init__(self, bindings: Sequence[AclBinding]) -> None:
        self._bindings = list(bindings)

    def build(self, request_struct_class: type[CreateAclsRequestStruct]) -> CreateAclsRequestStruct:
        rows = [
            (
                _RESOURCE[b.resource],
                b.name,
                *((_PATTERN[b.pattern],) if request_struct_class.API_VERSION >= 1 else ()),
                b.kafka_principal,
                "*",
                _OPERATION[b.operation],
                _ALLOW,
            )
            for b in self._bindings
        ]
        if request_struct_class.API_VERSION < 1 and any(b.pattern != "literal" for b in self._bindings):
            raise RuntimeError("the broker is too old for prefixed ACLs (CreateAcls v1, Kafka 2.0)")
        return request_struct_class(rows)


async def create_acls(settings: Settings, bindings: Sequence[AclBinding] | None = None) -> int:
    """Create the ALLOW rules (idempotent: an existing rule is left as it is); return how many were sent.
    ``settings`` must name a principal allowed to alter ACLs (the super user)."""
    bindings = acl_bindings() if bindings is None else bindings
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        response = await admin._send_request(_CreateAcls(bindings))
    finally:
        await admin.close()
    for binding, (code, message) in zip(bindings, response.creation_responses, strict=True):
        if code:
            raise for_code(code)(f"{binding}: {message}")
    return len(bindings)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m shared.kafka_security acls``: create every principal's ACLs (run as the super user);
    ``… acls --list`` prints them without connecting."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "acls":
        print("usage: python -m shared.kafka_security acls [--list]", file=sys.stderr)  # noqa: T201
        return 2
    if "--list" in args:
        for b in acl_bindings():
            print(f"{b.kafka_principal} {b.operation} {b.resource}:{b.pattern}:{b.name}")  # noqa: T201
        return 0
    try:
        count = asyncio.run(create_acls(get_settings()))
    except KafkaCredentialsMissing as exc:
        print(exc, file=sys.stderr)  # noqa: T201
        return 1
    print(f"{count} ACL rule(s) in place for {', '.join(PRINCIPALS[1:])}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
