"""Contract tests: the published artefacts are current, and the models keep the promises they advertise.

Downstream teams code against ``contracts/schemas/*.json`` and ``contracts/asyncapi.yaml``, so a model change
without regenerating them is a broken promise even when every service still works.
"""

import json
import re
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, get_args

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from contracts import Envelope, examples, generate, parse_envelope, to_money
from contracts.events import ClaimAdjustment, RawFileReceived
from contracts.topics import INTAKE, TOPICS, Topic, all_topic_names

TOPIC_NAME = re.compile(r"^remit\.[a-z-]+\.v\d+$")


def _payload(topic: Topic[Any]) -> type[BaseModel]:
    assert topic.payload is not None, f"{topic.name} has no payload model"
    return topic.payload


def _by_name(topic: Topic[Any]) -> str:
    return topic.name


# --- (a) generated artefacts are current --------------------------------------------------------------------


def test_committed_artefacts_equal_a_fresh_generation() -> None:
    stale = generate.stale_files()
    listing = ", ".join(str(p.relative_to(generate.CONTRACTS_DIR.parent)) for p in stale)
    assert not stale, f"contract artefacts are stale ({listing}); run `make contracts` and commit the result"


def test_generation_is_deterministic() -> None:
    assert generate.render() == generate.render()


def test_check_mode_exits_zero_when_current(capsys: pytest.CaptureFixture[str]) -> None:
    # Step: the artefacts are current (previous test), so --check reports success without writing.
    generate.main(["--check"])
    assert "up to date" in capsys.readouterr().out


@pytest.mark.parametrize("topic", TOPICS, ids=_by_name)
def test_schema_file_is_titled_by_topic_and_lists_its_event_types(topic: Topic[Any]) -> None:
    schema = json.loads(generate.schema_file(topic).read_text(encoding="utf-8"))
    assert schema["title"] == topic.name
    assert schema["properties"]["event_type"]["enum"] == list(topic.event_types)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_asyncapi_document_is_complete_and_every_reference_resolves() -> None:
    document = yaml.safe_load(generate.ASYNCAPI_PATH.read_text(encoding="utf-8"))
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "offsetstream"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(all_topic_names())
    unresolved = []
    for ref in sorted(set(_refs(document))):
        try:
            _resolve(document, ref)
        except (KeyError, TypeError):
            unresolved.append(ref)
    assert not unresolved, f"asyncapi.yaml has dangling $refs: {unresolved}"
    for op_id, operation in document["operations"].items():
        channel_ref = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel_ref + "/messages/"), f"{op_id} names another channel"


def test_asyncapi_has_an_operation_for_every_producer_and_consumer() -> None:
    document = yaml.safe_load(generate.ASYNCAPI_PATH.read_text(encoding="utf-8"))
    operations = Counter(
        (op["action"], _resolve(document, op["channel"]["$ref"])["address"])
        for op in document["operations"].values()
    )
    for t in TOPICS:
        assert operations[("send", t.name)] == len(t.producers), f"{t.name}: one send per producer"
        assert operations[("receive", t.name)] == len(t.consumers), f"{t.name}: one receive per consumer"
        if t.consumers:
            assert operations[("send", t.dlt)] >= 1, f"nobody is documented as dead-lettering {t.name}"


def test_dead_letter_headers_match_what_the_stage_runtime_writes() -> None:
    from shared.batches import dead_letter_message
    from shared.messages import Incoming

    # Step: dead-letter a message the way every stage does, with a location inside the document.
    incoming = Incoming(topic=INTAKE.name, partition=2, offset=7, key=b"k", value=b"not json")
    letter = dead_letter_message("intake", incoming, "syntax", "bad ISA", {"st02": "0001", "file": "a.835"})
    written = {name for name, _ in letter.headers}
    # Step: every header written is documented, and every documented required header is written.
    schema = _resolve(
        yaml.safe_load(generate.ASYNCAPI_PATH.read_text(encoding="utf-8")),
        "#/components/schemas/DeadLetterHeaders",
    )
    (pattern,) = schema["patternProperties"]
    undocumented = {h for h in written if h not in schema["properties"] and not re.match(pattern, h)}
    assert not undocumented, f"DLT headers missing from asyncapi.yaml: {undocumented}"
    assert set(schema["required"]) <= written
    assert letter.topic == TOPICS[0].dlt
    assert letter.value == incoming.value


# --- (b) every field is described ---------------------------------------------------------------------------


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """Pydantic models inside an annotation: ``X``, ``X | None``, ``tuple[X, ...]``, ``dict[str, X]``…"""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models_in(arg)


def _undescribed(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[str]:
    if model in seen:
        return
    seen.add(model)
    for name, info in model.model_fields.items():
        if not (info.description or "").strip():
            yield f"{model.__name__}.{name}"
        for nested in _models_in(info.annotation):
            yield from _undescribed(nested, seen)


@pytest.mark.parametrize("topic", TOPICS, ids=_by_name)
def test_every_field_of_envelope_and_payload_has_a_description(topic: Topic[Any]) -> None:
    missing = list(_undescribed(examples.envelope_model(topic), set()))
    assert not missing, f"fields without description (they become the published docs): {missing}"


def test_the_walk_reaches_nested_models() -> None:
    # Guard for the test above: tuple[ClaimAdjustment, ...] inside ClaimPaymentReceived must be visited.
    class Bare(BaseModel):
        items: tuple[ClaimAdjustment, ...]

    class Outer(BaseModel):
        inner: Bare | None = None

    assert list(_undescribed(Outer, set())) == ["Outer.inner", "Bare.items"]


# --- (c) money ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "wire"),
    [
        (Decimal("1.5"), "1.50"),
        ("1.5", "1.50"),
        (Decimal("-40.5"), "-40.50"),
        (120, "120.00"),
        ("0.005", "0.01"),
        ("-0.005", "-0.01"),
    ],
)
def test_money_is_a_two_decimal_string_on_the_wire_and_round_trips(given: Any, wire: str) -> None:
    adjustment = ClaimAdjustment(level="claim", group_code="CO", reason_code="45", amount=given)
    raw = adjustment.model_dump_json()
    assert json.loads(raw)["amount"] == wire
    assert ClaimAdjustment.model_validate_json(raw) == adjustment
    assert to_money(wire) == Decimal(wire)


@pytest.mark.parametrize("raw", ['{"amount": 1.5}', '{"amount": 1.50}'])
def test_money_as_a_json_number_is_rejected(raw: str) -> None:
    fields = '"level": "claim", "group_code": "CO", "reason_code": "45", '
    with pytest.raises(ValidationError, match="never a float"):
        ClaimAdjustment.model_validate_json("{" + fields + raw[1:])


@pytest.mark.parametrize("bad", [1.5, "NaN", "Infinity", "12,50", ""])
def test_money_refuses_floats_and_non_amounts(bad: Any) -> None:
    with pytest.raises(ValidationError):
        ClaimAdjustment(level="claim", group_code="CO", reason_code="45", amount=bad)


def test_money_schema_says_string_with_two_decimals() -> None:
    schema = ClaimAdjustment.model_json_schema(mode="serialization")["properties"]["amount"]
    assert schema["type"] == "string"
    assert re.fullmatch(schema["pattern"], "1.50")
    assert not re.fullmatch(schema["pattern"], "1.5")


# --- (d) examples round-trip --------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", TOPICS, ids=_by_name)
def test_example_envelope_round_trips_through_bytes(topic: Topic[Any]) -> None:
    envelope = examples.example_envelope(topic)
    assert envelope.event_type in topic.event_types
    raw = envelope.to_bytes()
    assert parse_envelope(raw, _payload(topic)) == envelope
    assert parse_envelope(raw.decode(), _payload(topic)).to_bytes() == raw


def test_raw_file_with_non_utf8_bytes_round_trips() -> None:
    topic = TOPICS[0]
    original = examples.example_envelope(topic)
    latin1 = original.payload.model_copy(update={"content": "ISA*00*CAFÉ~".encode("latin-1")})
    envelope = original.model_copy(update={"payload": latin1})
    assert parse_envelope(envelope.to_bytes(), RawFileReceived) == envelope


# --- (e) strict producers, tolerant consumers ---------------------------------------------------------------


def _with_unknown_fields(envelope: Envelope[Any]) -> str:
    data = envelope.model_dump(mode="json")
    data["routing_hint"] = "from a newer producer"
    data["payload"]["new_optional_field"] = "also newer"
    return json.dumps(data)


@pytest.mark.parametrize("topic", TOPICS, ids=_by_name)
def test_consumers_ignore_unknown_fields(topic: Topic[Any]) -> None:
    envelope = examples.example_envelope(topic)
    assert parse_envelope(_with_unknown_fields(envelope), _payload(topic)) == envelope


@pytest.mark.parametrize("topic", TOPICS, ids=_by_name)
def test_producers_are_strict_about_unknown_fields(topic: Topic[Any]) -> None:
    envelope = examples.example_envelope(topic)
    model = examples.envelope_model(topic)
    with pytest.raises(ValidationError, match="extra"):
        model.model_validate_json(_with_unknown_fields(envelope))
    fields: dict[str, Any] = {**dict(envelope), "routing_hint": "x"}
    with pytest.raises(ValidationError, match="extra"):
        model(**fields)
    with pytest.raises(ValidationError, match="extra"):
        _payload(topic)(**dict(envelope.payload), new_optional_field="x")


def test_contracts_are_immutable() -> None:
    envelope = examples.example_envelope(TOPICS[0])
    with pytest.raises(ValidationError):
        envelope.tenant_id = "another-tenant"  # type: ignore[misc]


# --- (f) topic names and dead-letter topics -----------------------------------------------------------------


@pytest.mark.parametrize("topic", TOPICS, ids=_by_name)
def test_topic_name_follows_the_convention(topic: Topic[Any]) -> None:
    assert TOPIC_NAME.fullmatch(topic.name), f"{topic.name} must look like remit.<noun>.v<major>"


def test_topic_names_are_unique() -> None:
    names = all_topic_names()
    assert len(names) == len(set(names))


@pytest.mark.parametrize("topic", [t for t in TOPICS if t.consumers], ids=_by_name)
def test_every_consumed_topic_has_a_dead_letter_topic(topic: Topic[Any]) -> None:
    assert topic.dlt.endswith(".dlt")
    assert topic.dlt in all_topic_names()
