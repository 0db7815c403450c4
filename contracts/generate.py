"""Generate the published contract artefacts: one JSON Schema per topic and the AsyncAPI 3 document.

Downstream teams read these files, not our Python: run ``python -m contracts.generate`` (``make contracts``)
after changing a model or a topic, and commit the result. ``--check`` writes nothing and exits 1 listing the
stale files; ``tests/contract`` runs the same comparison. Output is deterministic (sorted JSON, fixed example
values, stable YAML order) so an unchanged contract never produces a diff.

The examples below are small valid payloads built through the models themselves, money given as strings, so a
model change that breaks them fails here rather than in a consumer's hands.
"""

import argparse
import json
import sys
import tomllib
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from contracts.examples import envelope_model, example_envelope, examples_per_event_type
from contracts.topics import TOPICS, Topic, all_topic_names

CONTRACTS_DIR = Path(__file__).resolve().parent
SCHEMAS_DIR = CONTRACTS_DIR / "schemas"
ASYNCAPI_PATH = CONTRACTS_DIR / "asyncapi.yaml"
PYPROJECT = CONTRACTS_DIR.parent / "pyproject.toml"

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
DEAD_LETTER_MESSAGE = "DeadLetter"

DEAD_LETTER_HEADERS: dict[str, str] = {
    "reason": "Bounded, machine-readable reason (safe as a metric label), e.g. `syntax`, `invalid_message`, "
    "`plugin_error`.",
    "error": "What went wrong, where, and what was expected, in words a billing specialist understands; "
    "no PHI; at most 1000 characters.",
    "service": "The service that dead-lettered the message.",
    "source_topic": "Topic the original message was consumed from.",
    "source_partition": "Partition of the original message, as a decimal string.",
    "source_offset": "Offset of the original message, as a decimal string.",
}
"""Headers every dead letter carries (UTF-8 strings), as ``shared.batches.dead_letter_message`` writes them."""

DEAD_LETTER_LOCATION_HEADER = r"^location\.[a-z0-9_]+$"
"""Optional ``location.<field>`` headers: where in the source document (file, st02, segment_ordinal…)."""


# --- JSON Schema per topic ----------------------------------------------------------------------------------


def envelope_schema(topic: Topic[Any]) -> dict[str, Any]:
    """Serialization-mode JSON Schema of a topic's envelope: what producers put on the wire.

    The title is the topic name and ``event_type`` is narrowed to the topic's event types, which the generic
    ``Envelope`` cannot express by itself.
    """
    schema = envelope_model(topic).model_json_schema(mode="serialization")
    schema["title"] = topic.name
    schema["description"] = topic.description
    schema["properties"]["event_type"]["enum"] = list(topic.event_types)
    return schema


def schema_file(topic: Topic[Any]) -> Path:
    """Where a topic's JSON Schema is committed."""
    return SCHEMAS_DIR / f"{topic.name}.json"


def _dump_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_schemas() -> dict[Path, str]:
    """The text of every topic's JSON Schema file, keyed by path."""
    return {
        schema_file(t): _dump_json({"$schema": JSON_SCHEMA_DIALECT, **envelope_schema(t)}) for t in TOPICS
    }


# --- Examples -----------------------------------------------------------------------------------------------


# --- AsyncAPI 3 ---------------------------------------------------------------------------------------------


def _identifier(*parts: str) -> str:
    """camelCase id from topic names and words: ``remit.claim-payments.v1`` -> ``remitClaimPaymentsV1``."""
    words = [w for part in parts for w in part.replace(".", " ").replace("-", " ").replace("_", " ").split()]
    return words[0].lower() + "".join(w[:1].upper() + w[1:] for w in words[1:])


def _rewrite_refs(node: Any) -> Any:
    """Point pydantic's local ``#/$defs/X`` references at ``#/components/schemas/X``."""
    if isinstance(node, dict):
        return {
            k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" else _rewrite_refs(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def _sorted(node: Any) -> Any:
    """Recursively key-sorted copy, so schemas read the same in YAML as in the JSON files."""
    if isinstance(node, dict):
        return {k: _sorted(node[k]) for k in sorted(node)}
    if isinstance(node, list):
        return [_sorted(v) for v in node]
    return node


def _component_schemas() -> dict[str, Any]:
    """Envelope schemas keyed by topic name plus every payload model, hoisted from ``$defs`` and shared."""
    schemas: dict[str, Any] = {}
    for t in TOPICS:
        envelope = envelope_schema(t)
        for name, raw in envelope.pop("$defs", {}).items():
            definition = _sorted(_rewrite_refs(raw))
            if schemas.setdefault(name, definition) != definition:
                raise ValueError(f"two different models are both named {name}; rename one")
        schemas[t.name] = _sorted(_rewrite_refs(envelope))
    schemas["DeadLetterHeaders"] = {
        "type": "object",
        "description": "Kafka headers of a dead letter, UTF-8 strings.",
        "properties": {
            name: {"type": "string", "description": text} for name, text in DEAD_LETTER_HEADERS.items()
        },
        "patternProperties": {
            DEAD_LETTER_LOCATION_HEADER: {
                "type": "string",
                "description": "One field locating the problem in the source document, e.g. `location.st02`, "
                "`location.segment_ordinal`; never an element value (it may be PHI). Absent when the problem "
                "is not tied to a document position.",
            }
        },
        "required": list(DEAD_LETTER_HEADERS),
    }
    return schemas


def _kafka_key(description: str) -> dict[str, Any]:
    key = {"type": "string", "description": description}
    return {"kafka": {"key": key, "bindingVersion": KAFKA_BINDING_VERSION}}


def _message_id(topic: Topic[Any]) -> str:
    return topic.payload.__name__


def _topic_message(topic: Topic[Any]) -> dict[str, Any]:
    payload_doc = (topic.payload.__doc__ or "").strip().splitlines()
    example = example_envelope(topic)
    return {
        "name": _message_id(topic),
        "title": f"{_message_id(topic)} on {topic.name}",
        "summary": payload_doc[0] if payload_doc else topic.description,
        "description": f"Event types: {', '.join(topic.event_types)}. JSON envelope; money as strings.",
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{topic.name}"},
        "bindings": _kafka_key(topic.key),
        "examples": [
            {
                "name": _identifier("example", event.event_type),
                "summary": f"A {event.event_type} event.",
                "payload": event.model_dump(mode="json"),
            }
            for event in examples_per_event_type(topic, example)
        ],
    }


def _dead_letter_message() -> dict[str, Any]:
    original = example_envelope(TOPICS[0])
    return {
        "name": DEAD_LETTER_MESSAGE,
        "title": "Dead letter",
        "summary": "A message its consumer could not process: the original bytes plus why and where.",
        "description": "Replay after a fix with `offsetstream dlt replay`, which produces the original "
        "message to `source_topic` with the same key. The value is usually the original message unchanged. "
        "Two kinds of record carry a small JSON body instead (`offsetstream_dead_letter_body`, see "
        "shared/dlt_refs.py), so a record is always small: intake's records name the payer file kept once "
        "in PostgreSQL `intake.raw_files` (`raw_file_reference`: tenant, SHA-256, file name, transaction, byte "
        "range), and a record whose original would not fit the broker's message cap names its source "
        "position (`omitted`). Dead-letter topics keep records OFFSETSTREAM_DLT_RETENTION_DAYS days (30).",
        "contentType": "application/octet-stream",
        "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
        "payload": {
            "type": "string",
            "format": "binary",
            "description": "The original message value, byte for byte; or a JSON body naming where it is "
            "kept (`raw_file_reference`, `omitted`).",
        },
        "bindings": _kafka_key("The original message's key, unchanged: partitioned like the source topic."),
        "examples": [
            {
                "name": "unparseableFile",
                "summary": "An 835 whose BPR segment is missing, dead-lettered by intake.",
                "headers": {
                    "reason": "missing_segment",
                    "error": "missing_segment: no BPR segment (file era-2024-06-03.835, ST02 0001, "
                    "segment #3); expected BPR after ST",
                    "service": "intake",
                    "source_topic": TOPICS[0].name,
                    "source_partition": "0",
                    "source_offset": "42",
                    "location.file": "era-2024-06-03.835",
                    "location.segment_ordinal": "3",
                    "location.st02": "0001",
                },
                "payload": original.to_bytes().decode(),
            }
        ],
    }


def dead_letter_topics() -> list[tuple[str, tuple[Topic[Any], ...], tuple[str, ...]]]:
    """Every dead-letter topic with the topics it serves and the services that send to it.

    A dead-letter topic (``Topic.dlt``) receives what the consumers of its topics could not process; for a
    topic nobody inside offsetstream consumes (notifications), it receives what the producer could not
    deliver onward after its retries.
    """
    result: list[tuple[str, tuple[Topic[Any], ...], tuple[str, ...]]] = []
    names = {t.name for t in TOPICS}
    for name in all_topic_names():
        if name in names:
            continue
        related = tuple(t for t in TOPICS if t.dlt == name)
        if not related:
            raise ValueError(f"topic {name} is neither a contract topic nor the dead-letter topic of one")
        consumers = tuple(dict.fromkeys(s for t in related for s in t.consumers))
        senders = consumers or tuple(dict.fromkeys(s for t in related for s in t.producers))
        result.append((name, related, senders))
    return result


def _channels_and_operations() -> tuple[dict[str, Any], dict[str, Any]]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    def add_operations(
        channel_id: str, address: str, message_id: str, action: str, services: Sequence[str]
    ) -> None:
        for service in services:
            who = "the `offsetstream` command" if service == "cli" else f"the {service} service"
            verb = "sends to" if action == "send" else "consumes"
            operations[_identifier(service, action, address)] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": f"{who[0].upper()}{who[1:]} {verb} {address}.",
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
            }

    for t in TOPICS:
        channel_id, message_id = _identifier(t.name), _message_id(t)
        channels[channel_id] = {
            "address": t.name,
            "title": t.name,
            "description": t.description,
            "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
            "bindings": {
                "kafka": {
                    "topic": t.name,
                    "partitions": t.partitions,
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        add_operations(channel_id, t.name, message_id, "send", t.producers)
        add_operations(channel_id, t.name, message_id, "receive", t.consumers)
    for name, related, senders in dead_letter_topics():
        channel_id = _identifier(name)
        sources = ", ".join(t.name for t in related)
        what = (
            f"Messages of {sources} that their consumers could not process"
            if any(t.consumers for t in related)
            else f"Messages of {sources} that could not be delivered onward after all retries"
        )
        channels[channel_id] = {
            "address": name,
            "title": name,
            "description": f"{what}: original bytes plus reason headers.",
            "messages": {DEAD_LETTER_MESSAGE: {"$ref": f"#/components/messages/{DEAD_LETTER_MESSAGE}"}},
            "bindings": {"kafka": {"topic": name, "bindingVersion": KAFKA_BINDING_VERSION}},
        }
        add_operations(channel_id, name, DEAD_LETTER_MESSAGE, "send", senders)
    return channels, operations


def project_version() -> str:
    """The project version from pyproject.toml (the repository), else from the installed distribution."""
    if PYPROJECT.exists():
        return str(tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"])
    try:
        return version("offsetstream")
    except PackageNotFoundError:  # pragma: no cover - neither a checkout nor an installed package
        return "0.0.0"


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every topic, dead-letter topic and producing/consuming service."""
    channels, operations = _channels_and_operations()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "offsetstream",
            "version": project_version(),
            "description": "Streaming reconciliation of payer overpayments, offsets and recoupments from X12 "
            "835 remittances. Every message value is a JSON envelope (event id, type, tenant, account key, "
            "causation) around a typed payload; amounts are strings with two decimals. Producers are strict; "
            "consumers ignore fields they do not know. A breaking change is a new major version and a new "
            "topic.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "compose": {
                "host": "kafka:9092",
                "protocol": "kafka",
                "description": "The broker of docker-compose.yml (production-like deployment).",
            },
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The embedded single-node broker of the one-machine default.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": _component_schemas(),
            "messages": {
                **{_message_id(t): _topic_message(t) for t in TOPICS},
                DEAD_LETTER_MESSAGE: _dead_letter_message(),
            },
        },
    }


def render_asyncapi() -> str:
    """The AsyncAPI document as YAML text, in insertion order (which is fixed above)."""
    return yaml.safe_dump(
        asyncapi_document(), sort_keys=False, allow_unicode=True, default_flow_style=False, width=120
    )


# --- Command ------------------------------------------------------------------------------------------------


def render() -> dict[Path, str]:
    """Every generated artefact's text, keyed by path."""
    return {**render_schemas(), ASYNCAPI_PATH: render_asyncapi()}


def stale_files(rendered: dict[Path, str] | None = None) -> list[Path]:
    """Artefacts that are missing or differ from a fresh generation, plus schema files of no topic."""
    rendered = render() if rendered is None else rendered
    stale = [p for p, text in rendered.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    orphans = [p for p in sorted(SCHEMAS_DIR.glob("*.json")) if p not in rendered]
    return stale + orphans


def write(rendered: dict[Path, str] | None = None) -> list[Path]:
    """Write every stale artefact and delete orphaned schema files; returns the paths touched."""
    rendered = render() if rendered is None else rendered
    touched = stale_files(rendered)
    SCHEMAS_DIR.mkdir(parents=True, exist_ok=True)
    for path in touched:
        if path in rendered:
            path.write_text(rendered[path], encoding="utf-8")
        else:
            path.unlink()
    return touched


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m contracts.generate [--check]``."""
    parser = argparse.ArgumentParser(prog="python -m contracts.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 listing stale files")
    args = parser.parse_args(argv)
    root = CONTRACTS_DIR.parent
    if args.check:
        stale = stale_files()
        if stale:
            listing = "".join(f"  {p.relative_to(root)}\n" for p in stale)
            sys.stderr.write(f"stale contract artefacts (run `make contracts`):\n{listing}")
            raise SystemExit(1)
        sys.stdout.write("contract artefacts are up to date\n")
        return
    touched = write()
    for path in touched:
        sys.stdout.write(f"{'wrote' if path.exists() else 'removed'} {path.relative_to(root)}\n")
    if not touched:
        sys.stdout.write("contract artefacts are up to date\n")


if __name__ == "__main__":
    main()
