"""Common library: ids, references, plugins, settings, signing, DLT records."""

import gc
import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import examples
from contracts.envelope import Envelope
from contracts.events import LetterReceived
from contracts.references import receivable_reference
from contracts.topics import CLAIM_PAYMENTS, INTAKE, LETTERS, STAFF_ACTIONS, all_topic_names, dlt_name
from services.intake import publish
from shared import gc_tuning, plugins
from shared.batches import dead_letter_message
from shared.db import unnest_columns
from shared.ids import account_key, receivable_id, stable_id
from shared.messages import FailedInput, Incoming, Outgoing, Rejected
from shared.settings import Settings
from shared.stream import Stage
from shared.webhook import sign, verify


def test_ids_are_deterministic_and_tenant_scoped() -> None:
    assert stable_id("a", 1) == stable_id("a", 1)
    assert stable_id("a", 1) != stable_id("a", 2)
    assert receivable_id("t1", "01312", "FCN1") != receivable_id("t2", "01312", "FCN1")
    key = account_key("t1", "01312", "1234567893")
    assert len(key) == 32 and "1234567893" not in key


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("FCN26080300017     PCN1001", "FCN26080300017"),
        ("2226183201000", "2226183201000"),
        ("  FCN1  ", "FCN1"),
        ("", None),
        (None, None),
    ],
)
def test_receivable_reference_reads_the_medicare_layout(raw: str | None, expected: str | None) -> None:
    assert receivable_reference(raw) == expected


def test_built_in_plugins_load_through_entry_points() -> None:
    assert "x12_835" in plugins.load_plugins(plugins.FEED_PARSERS)
    assert {"deferred_recovery", "reversal_correction"} <= set(plugins.load_plugins(plugins.DETECTION_RULES))
    assert "medicare" in plugins.load_plugins(plugins.PAYER_POLICIES)
    assert "webhook" in plugins.load_plugins(plugins.NOTIFICATION_CHANNELS)


def test_plugins_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFSETSTREAM_PLUGINS_DISABLE", "offsetstream.detection_rules:deferred_recovery")
    assert "deferred_recovery" not in plugins.load_plugins(plugins.DETECTION_RULES)
    with pytest.raises(ValueError, match="unknown plugin group"):
        plugins.load_plugins("offsetstream.nope")


def test_settings_come_from_prefixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFSETSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("OFFSETSTREAM_WEB_PORTS", '{"intake": 7001}')
    monkeypatch.setenv("OFFSETSTREAM_PAYER_POLICIES", '{"87726": "commercial"}')
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:1"
    assert settings.web_port("intake") == 7001
    assert settings.payer_policies == {"87726": "commercial"}


def test_webhook_signature_round_trip_and_tamper() -> None:
    header = sign("k", "1700000000", "d1", b'{"a":1}')
    assert verify("k", header, "d1", b'{"a":1}', now=1700000100)
    assert not verify("k", header, "d1", b'{"a":2}', now=1700000100)
    assert not verify("k", header, "d2", b'{"a":1}', now=1700000100)  # the delivery id is signed too
    assert not verify("other", header, "d1", b'{"a":1}', now=1700000100)
    assert not verify("k", header, "d1", b'{"a":1}', now=1700009999)  # too old: replay
    assert not verify("k", "garbage", "d1", b"")


def test_the_webhook_signature_is_the_documented_hmac() -> None:
    # docs/webhooks.md: v1 = hex(HMAC-SHA256(key, "<t>.<delivery id>." + body)), computed here the long way
    body = b'{"a":1}'
    expected = hmac.new(b"k", b"1700000000.d1." + body, hashlib.sha256).hexdigest()
    assert sign("k", "1700000000", "d1", body) == f"t=1700000000,v1={expected}"


def test_unnest_columns_turns_rows_into_columns_and_refuses_a_row_of_another_width() -> None:
    assert unnest_columns(3, iter([(1, "a", None), (2, "b", True)])) == [[1, 2], ["a", "b"], [None, True]]
    assert unnest_columns(2, []) == [[], []]
    with pytest.raises(ValueError):
        unnest_columns(2, [(1, 2), (3,)])
    with pytest.raises(ValueError):
        unnest_columns(2, [(1, 2, 3)])


def test_dead_letter_keeps_original_bytes_and_names_the_source() -> None:
    incoming = Incoming(INTAKE.name, 2, 41, b"k", b"\xff\x00raw", {})
    out = dead_letter_message(
        "intake", incoming, "unbalanced", "ΣCLP04 − ΣPLB ≠ BPR02", {"segment_ordinal": "7"}
    )
    headers = dict(out.headers)
    assert out.topic == "remit.intake.dlt" and out.value == b"\xff\x00raw"
    assert headers["reason"] == b"unbalanced"
    assert headers["source_offset"] == b"41"
    assert headers["location.segment_ordinal"] == b"7"
    assert dlt_name("remit.offsets.v1") == "remit.offsets.dlt"
    assert "remit.intake.dlt" in all_topic_names()


# --- raw file keys ----------------------------------------------------------------------------------------


ISA = (
    "ISA*00*          *00*          *ZZ*{sender:<15}*ZZ*RECEIVER       *260101*1200*^*00501*000000001*0*P*:~"
)


def test_files_of_one_x12_sender_share_a_key_so_they_stay_in_order() -> None:
    first = (ISA.format(sender="01312") + "GS*HP~").encode()
    later = (ISA.format(sender="01312") + "GS*HP*other~").encode()
    other = (ISA.format(sender="00431") + "GS*HP~").encode()
    assert publish.interchange_sender(first) == "01312"
    key_first, value_first = publish.raw_file_message(first, "a.835", "t1", "cli")
    key_later, value_later = publish.raw_file_message(later, "b.835", "t1", "cli")
    assert key_first == key_later and value_first != value_later
    assert publish.raw_file_message(other, "c.835", "t1", "cli")[0] != key_first
    assert publish.raw_file_message(first, "a.835", "t2", "cli")[0] != key_first  # tenants never share a key


def test_a_file_without_an_isa_header_is_keyed_by_its_content() -> None:
    csv_a, csv_b = b"payer_id,trace\n01312,T1\n", b"payer_id,trace\n01312,T2\n"
    assert publish.interchange_sender(csv_a) is None
    assert publish.interchange_sender(b"ISA*00*short~") is None
    assert (
        publish.raw_file_message(csv_a, "a.csv", "t1", "cli")[0]
        != publish.raw_file_message(csv_b, "b.csv", "t1", "cli")[0]
    )


def test_the_sender_is_read_with_the_file_s_own_element_separator() -> None:
    content = ("\ufeff" + ISA.format(sender="SENDER9").replace("*", "|") + "GS|HP~").encode()
    assert publish.interchange_sender(content) == "SENDER9"


# --- batches and faust acknowledgements -----------------------------------------------------------------


def test_a_batch_that_did_not_finish_never_becomes_committable() -> None:
    """Faust's take_events acks what it handed out however the loop left it; withheld messages must make that
    ack a no-op, or a worker stopped mid-batch would commit offsets whose effects were never written."""
    from types import SimpleNamespace

    from faust.types.tuples import Message

    from shared.stream import withhold_acks

    def message(offset: int) -> Message:
        return Message(CLAIM_PAYMENTS.name, 0, offset, 0.0, 0, None, b"k", b"v", None)

    finished, unfinished = message(1), message(2)
    withhold_acks([SimpleNamespace(message=unfinished)])
    consumer: Any = SimpleNamespace()  # the base Message's final ack never touches the consumer
    assert finished.ack(consumer) is True  # a processed message's final ack marks its offset committable
    assert unfinished.ack(consumer) is False  # a withheld one never does


async def test_a_stage_hands_each_topic_its_own_payload_type_and_refuses_wiring_mistakes(
    tmp_path: Path,
) -> None:
    stage = Stage("detection", Settings(data_dir=tmp_path))
    seen: list[LetterReceived] = []

    async def on_letter(conn: Any, env: Envelope[LetterReceived]) -> list[Outgoing]:
        seen.append(env.payload)
        return []

    stage.handle(LETTERS, on_letter)
    with pytest.raises(ValueError, match="already has a handler"):
        stage.handle(LETTERS, on_letter)
    with pytest.raises(ValueError, match=f"no handler registered for {STAFF_ACTIONS.name}"):
        stage.consume(LETTERS, STAFF_ACTIONS)
    stage.consume(LETTERS)
    [(topics, dispatch)] = stage.subscriptions
    assert topics == (LETTERS.name,)

    example = examples.example_envelope(LETTERS)
    assert await dispatch.apply(None, [Incoming(LETTERS.name, 0, 0, b"k", example.to_bytes())]) == [[]]
    assert seen == [example.payload]
    with pytest.raises(FailedInput) as bad:  # the runtime isolates it: an invalid_message dead letter
        await dispatch.apply(None, [Incoming(LETTERS.name, 0, 1, b"k", b'{"event_id": "x"}')])
    assert bad.value.position == 0 and isinstance(bad.value.cause, ValidationError)
    [stray] = await dispatch.apply(None, [Incoming(STAFF_ACTIONS.name, 0, 2, b"k", example.to_bytes())])
    assert isinstance(stray, Rejected) and "no handler for" in stray.message
    assert stray.reason == "unknown_topic"


def test_a_stage_worker_tunes_the_collector_before_faust_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Stage.run`` (each stage's ``python -m services.<stage> worker``) freezes what the built stage holds
    before Faust's worker starts, not after (objects in flight would be frozen for good) nor never."""
    stage = Stage("detection", Settings(data_dir=tmp_path))
    steps: list[str] = []

    def tune() -> int:
        steps.append("tune")
        return 100_000

    monkeypatch.setattr(gc_tuning, "tune", tune)
    monkeypatch.setattr(stage.app, "main", lambda: steps.append("main"))
    stage.run()
    assert steps == ["tune", "main"]


async def test_a_record_refused_by_a_batch_handler_leaves_no_reference_cycle(tmp_path: Path) -> None:
    """A record that does not parse is answered with its error, kept without its traceback: with it, the
    handler's frame (and so the whole batch) would sit in a reference cycle until the cyclic collector runs,
    which with the stages' young threshold (shared.gc_tuning) is many batches later."""
    stage = Stage("detection", Settings(data_dir=tmp_path))

    async def on_letters(conn: Any, envs: Any) -> list[list[Outgoing]]:
        return [[] for _ in envs]

    stage.handle_batch(LETTERS, on_letters)
    stage.consume(LETTERS)
    [(_, dispatch)] = stage.subscriptions
    good = examples.example_envelope(LETTERS).to_bytes()
    batch = [Incoming(LETTERS.name, 0, n, b"k", good) for n in range(50)]
    batch.append(Incoming(LETTERS.name, 0, 50, b"k", b'{"event_id": "x"}'))
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        given = await dispatch.apply(None, batch)
        [refused] = [g for g in given if isinstance(g, Exception)]
        assert isinstance(refused, ValidationError) and refused.__traceback__ is None
        del given, refused
        assert gc.collect() == 0, "a refused record left the batch in a reference cycle"
    finally:
        if was_enabled:
            gc.enable()


def test_a_batch_is_cut_into_transactions_of_bounded_bytes_in_order() -> None:
    """Detection's batches of claims parts: consecutive parts of at most ``max_bytes`` of input, a message
    larger than that alone, every message once in order; no bound, one transaction as before."""
    from shared.messages import Incoming
    from shared.stream import cut_by_bytes

    sizes = [400, 400, 300, 1500, 100, 100, 900]
    batch = [Incoming(CLAIM_PAYMENTS.name, 0, n, b"k", b"x" * size) for n, size in enumerate(sizes)]
    parts = cut_by_bytes(batch, 1000)
    assert [[m.offset for m in part] for part in parts] == [[0, 1], [2], [3], [4, 5], [6]]
    assert cut_by_bytes(batch, None) == [batch] and cut_by_bytes([], 1000) == []
