"""PHI never leaves: generated PLB references of every layout (padded, unpadded, one blank, odd lengths, the
patient control number or member id straight after the FCN) and generated patients go through the real
outbound builders — notification rules and the scrubber at emission, the backbone envelope, the webhook body,
the e-mail subject/text/message, alert payloads (matching's builder and ``shared.phi.safe_alert``), DLT headers,
the ``offsetstream dlt list`` row and log lines — and no patient control number, member id or name comes out."""

import io
import json
import logging
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from types import SimpleNamespace
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cli.dlt import _to_dead_letter
from contracts.envelope import parse_envelope
from contracts.events import (
    AlertRaised,
    Allocation,
    InterestAccrued,
    NotificationEmitted,
    OffsetRecorded,
    ProviderAdjustmentReceived,
    RawFileReceived,
    ReceivableChanged,
)
from contracts.references import LAYOUTS, ReferenceLayout
from contracts.topics import INTAKE
from services.notification import domain, outbound
from services.notification.channels import EmailChannel
from shared import envelopes, phi
from shared.batches import dead_letter_message
from shared.ids import account_key
from shared.messages import Incoming

D = Decimal
DET = date(2026, 8, 3)
TENANT = "clinic-phi"
KEY = account_key(TENANT, "01312", "1234567893")
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
NOT_HEX = "GHIJKLMNOPQRSTUVWXYZ"
PAYER_OF = {"medicare": "01312", "dme": "16013", "plain": "99999", None: "99999"}
"""A payer the real resolver gives each layout (Medicare table, DME MAC table, commercial default)."""


@dataclass(frozen=True)
class Patient:
    pcn: str
    member_id: str
    last: str
    first: str

    @property
    def tokens(self) -> phi.Tokens:
        return phi.Tokens.of([self.pcn, self.member_id], [self.last, self.first])


def identifier(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """An account number or member id. It has a digit and a letter no hex number has, so it cannot turn up by
    chance in a UUID, an amount or a timestamp of the envelope (all-digit ids: ``test_all_digit_...``)."""
    return st.builds(
        lambda head, letter, digit, tail: head + letter + digit + tail,
        st.text(ALNUM, max_size=max_size // 2),
        st.sampled_from(NOT_HEX),
        st.sampled_from("0123456789"),
        st.text(ALNUM, max_size=max_size // 2 - 2),
    ).filter(lambda s: min_size <= len(s) <= max_size)


NAME = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=12)
PATIENTS = st.builds(Patient, identifier(6, 20), identifier(6, 14), NAME, NAME)
FCN = st.text(ALNUM, min_size=1, max_size=19)


@st.composite
def references(draw: st.DrawFn, patient: Patient) -> tuple[ReferenceLayout | None, str, str]:
    """A layout (None: not known), a PLB reference of it with patient data after the FCN, and its form."""
    name = draw(st.sampled_from(["medicare", "dme", "plain", None]))
    layout = LAYOUTS[name] if name else None
    width = (layout.fcn_width if layout else None) or draw(st.integers(1, 30))
    fcn = draw(FCN.filter(lambda f: len(f) <= width))
    tail = draw(
        st.sampled_from(
            [patient.pcn, patient.member_id, f"{patient.pcn} {patient.last}", patient.pcn.ljust(20)]
        )
    )
    form = draw(st.sampled_from(["padded", "full_width", "one_blank", "glued", "spaced"]))
    if form == "padded":
        raw = fcn.ljust(width) + tail
    elif form == "full_width":
        raw = draw(st.text(ALNUM, min_size=width, max_size=width)) + tail
    elif form == "one_blank":
        raw = f"{fcn} {tail}"
    elif form == "glued":  # an odd-length FCN with the patient part straight after it
        raw = fcn + tail
    else:
        raw = f"  {fcn.ljust(width)}{tail}   "
    return layout, raw, form


UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
"""An event, receivable or notification id: random or a hash, never a patient's, but a name drawn from the
letters A-F (``DBEF``) can be one of its groups, which made the properties below fail at random."""


def leaks(text: str, patient: Patient) -> list[str]:
    """What of the patient shows in ``text``: an id anywhere, a name as a word or inside an identifier (the
    text's UUIDs left out: see :data:`UUID_TEXT`)."""
    upper = UUID_TEXT.sub("-", text).upper()
    found = [i for i in (patient.pcn, patient.member_id) if i in upper]
    for name in (patient.last, patient.first):
        if re.search(rf"(?<![A-Z0-9]){name}(?![A-Z0-9])", upper):
            found.append(name)
        if len(name) >= phi.MIN_ID_ANYWHERE and any(
            name in run and any(c.isdigit() for c in run) for run in re.findall(r"[A-Z0-9]+", upper)
        ):
            found.append(name)
    return found


# --- the builders ------------------------------------------------------------------------------------------------


def change(raw: str, payer: str) -> ReceivableChanged:
    return ReceivableChanged(
        receivable_id=uuid4(),
        payer_id=payer,
        reference=raw,
        status="open",
        policy="medicare",
        determination_date=DET,
        effective_date=DET,
        change_amount=D("300.00"),
        principal=D("300.00"),
        principal_recovered=D("0.00"),
        interest_accrued=D("0.00"),
        interest_recovered=D("0.00"),
        balance=D("300.00"),
        source="test",
    )


def offset(raw: str, payer: str, bucket: str, amount: str, rematch: bool = False) -> OffsetRecorded:
    return OffsetRecorded(
        offset_id=uuid4(),
        remittance_id=uuid4(),
        payer_id=payer,
        trace_number="EFT260914001",
        payment_date=date(2026, 9, 14),
        segment_ordinal=1,
        pair_index=1,
        reason_code="WO",
        reference=raw,
        amount=D(amount),
        bucket=bucket,
        allocations=(
            (Allocation(receivable_id=uuid4(), reference=raw, to_interest=D("0"), to_principal=D(amount)),)
            if bucket == "allocated"
            else ()
        ),
        unmatched_amount=D("0.00") if rematch else D(amount),
        reason=f"matched reference {raw}",
        rematch_of=uuid4() if rematch else None,
    )


def messages(raw: str, payer: str, quote: domain.Quote, detail: str) -> list[domain.Message]:
    """Every rule of the notification domain, fed the reference."""
    accrual = InterestAccrued(
        receivable_id=uuid4(),
        payer_id=payer,
        reference=raw,
        policy="medicare",
        period_number=1,
        period_start=date(2026, 9, 2),
        period_end=date(2026, 10, 1),
        principal_basis=D("300.00"),
        annual_rate=D("0.1175"),
        amount=D("2.94"),
    )
    alert = AlertRaised(
        alert_id=uuid4(),
        kind="forwarding_balance_not_closed",
        payer_id=payer,
        reference=raw,
        amount=D("180.00"),
        observed_on=DET,
        detail=detail,
    )
    application = domain.OffsetApplication(
        str(uuid4()), str(uuid4()), raw, "EFT1", DET, "WO", D("1"), D("0"), D("1"), D("0"), "settled"
    )
    deadline = domain.Deadline(str(uuid4()), raw, payer, "rebuttal_deadline", date(2026, 8, 18), D("300.00"))
    found = [
        *domain.for_receivable("ReceivableOpened", change(raw, payer), [("rebuttal_deadline", DET)], quote),
        *domain.for_receivable("ReceivableSettled", change(raw, payer), [], quote),
        *domain.for_offset("OffsetUnmatched", offset(raw, payer, "unmatched", "80.00"), quote),
        *domain.for_offset(
            "ForwardingBalanceOpened", offset(raw, payer, "forwarding_balance", "-180"), quote
        ),
        *domain.for_offset("OffsetApplied", offset(raw, payer, "allocated", "80.00", rematch=True), quote),
        domain.offset_applied(application, quote),
        *domain.for_interest(accrual, D("0.00"), quote),
        *domain.for_alert(alert, quote),
        domain.deadline_approaching(deadline, date(2026, 8, 15), quote),
    ]
    items = [domain.DigestItem(str(uuid4()), m.kind, m.severity, m.summary) for m in found]
    return [*found, domain.compose_digest(DET, items)]


def surfaces(message: domain.Message, scrubber: phi.Scrubber, scrub_at_emit: bool = True) -> list[str]:
    """Everything one notification becomes outside: the backbone envelope (and stored row), then per channel
    the webhook body, the e-mail subject and text, and the whole e-mail as it goes on the wire."""
    made = outbound.scrubbed(message, scrubber) if scrub_at_emit else message
    nid = uuid4()
    out = outbound.emitted(uuid4(), nid, made, TENANT, KEY)
    n = parse_envelope(out.value, NotificationEmitted).payload
    sent = outbound.outbound(n, TENANT, "ar@clinic.example", out.value, scrubber)
    mail = EmailChannel().message(sent).as_string()
    return [
        out.value.decode(),
        n.summary,
        json.dumps(n.facts),
        sent.body.decode(),
        sent.subject,
        sent.text,
        mail,
    ]


# --- properties ------------------------------------------------------------------------------------------------

PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VOCABULARY = {
    word
    for m in messages("FCN26080300017", "01312", domain.CONSERVATIVE, "forwarding balance opened")
    for text in surfaces(m, phi.Scrubber())
    for word in re.findall(r"[A-Za-z]+", text.upper())
}
"""Words our own messages use (kinds, field names, prose): a patient named PAYER is masked in the text, but
the JSON field ``payer_id`` keeps its name."""


def plausible(patient: Patient) -> bool:
    return patient.last not in VOCABULARY and patient.first not in VOCABULARY


@PROPERTY
@given(data=st.data(), patient=PATIENTS)
def test_no_notification_surface_carries_the_patient(data: st.DataObject, patient: Patient) -> None:
    assume(plausible(patient))
    layout, raw, _form = data.draw(references(patient))
    payer = PAYER_OF[layout.name if layout else None]
    scrubber = phi.Scrubber(None, patient.tokens)
    quote = domain.quoter(layout, patient.tokens)
    detail = f"forwarding balance {raw} for {patient.first} {patient.last} (member {patient.member_id})"
    for message in messages(raw, payer, quote, detail):
        for text in surfaces(message, scrubber):
            assert not leaks(text, patient), (message.kind, raw, text)


@PROPERTY
@given(data=st.data(), patient=PATIENTS)
def test_delivery_scrubs_again_what_was_emitted_before_the_tokens_were_known(
    data: st.DataObject, patient: Patient
) -> None:
    """A notification already on the backbone without token scrubbing (published before its account's claim
    was learnt, or by an older version): the webhook body and the e-mail still carry none of it."""
    assume(plausible(patient))
    layout, raw, _form = data.draw(references(patient))
    payer = PAYER_OF[layout.name if layout else None]
    scrubber = phi.Scrubber(None, patient.tokens)
    for message in messages(raw, payer, domain.quoter(layout), f"forwarding balance {raw}"):
        for text in surfaces(message, scrubber, scrub_at_emit=False)[3:]:
            assert not leaks(text, patient), (message.kind, raw, text)


@PROPERTY
@given(data=st.data(), patient=PATIENTS)
def test_alert_payloads_quote_references_by_layout_and_mask_the_patient(
    data: st.DataObject, patient: Patient
) -> None:
    """``remit.alerts.v1`` as matching builds it (the real ``ledger.alert``, layout by the payer through the
    policy resolver) and as any producer builds it through ``shared.phi.safe_alert``."""
    from policies.config import resolver
    from services.matching.ledger import alert as matching_alert
    from services.matching.ledger import reference_layout
    from shared.settings import get_settings

    assume(plausible(patient))
    layout, raw, form = data.draw(references(patient))
    payer = PAYER_OF[layout.name if layout else None]
    detail = f"forwarding balance {raw} opened 2026-09-14 still has 180.00 open"
    built = phi.safe_alert(
        AlertRaised(
            alert_id=uuid4(),
            kind="forwarding_balance_not_closed",
            payer_id=payer,
            reference=raw,
            amount=D("180.00"),
            observed_on=DET,
            detail=f"{detail}; patient {patient.last}, {patient.first}, member {patient.member_id}",
        ),
        layout,
        patient.tokens,
    )
    assert not leaks(built.model_dump_json(), patient), built
    if layout is None or layout.fcn_width is None:
        return  # a plain reference is all key: only known tokens can be masked, tested above
    assert patient.pcn not in (built.reference or "")
    source = envelopes.build(
        ProviderAdjustmentReceived(
            remittance_id=uuid4(),
            payer_id=payer,
            trace_number="EFT260914001",
            payment_date=date(2026, 9, 14),
            segment_ordinal=1,
            pair_index=1,
            provider_identifier="1234567893",
            fiscal_period_date=date(2026, 12, 31),
            reason_code="WO",
            reference=raw,
            amount=D("-80.00"),
        ),
        event_id=uuid4(),
        event_type="ProviderAdjustmentReceived",
        tenant_id=TENANT,
        account_key=KEY,
        causation_id="test",
    )
    layout_of_payer = reference_layout(resolver(get_settings()), TENANT, payer)
    published = matching_alert(
        source, uuid4(), "unmatched_recovery_aging", payer, raw, D("80"), DET, detail, layout_of_payer
    )
    if form != "glued":
        # the FCN field is full or padded: the layout alone (matching knows no tokens) removes the patient
        # part; one glued to a short FCN only a known token can find (the notification properties above)
        assert patient.pcn not in published.value.decode().upper(), published.value


def an_835(patient: Patient, raw: str) -> str:
    isa = (
        "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *260803*1200*^*00501*"
        "000000001*0*P*:~"
    )
    assert len(isa) == 106
    return (
        f"{isa}GS*HP*SENDER*RECEIVER*20260803*1200*1*X*005010X221A1~ST*835*0001~"
        f"NM1*QC*1*{patient.last}*{patient.first}****MI*{patient.member_id}~"
        f"CLP*{patient.pcn}*1*100*80**MB*2226183201000~PLB*1234567893*20261231*WO:{raw}*-80~SE*5*0001~"
    )


@PROPERTY
@given(data=st.data(), patient=PATIENTS)
def test_dead_letter_headers_and_the_listing_never_show_the_patient(
    data: st.DataObject, patient: Patient
) -> None:
    assume(plausible(patient))
    _, raw, _ = data.draw(references(patient))
    raw = raw.replace("*", "").replace("~", "").replace(":", "")
    content = an_835(patient, raw).encode()
    value = (
        envelopes.build(
            RawFileReceived(file_name="x.835", content=content, sha256="0" * 64, source="cli"),
            event_id=uuid4(),
            event_type="RawFileReceived",
            tenant_id=TENANT,
            account_key=KEY,
            causation_id="test",
        )
        .model_dump_json(by_alias=True)
        .encode()
    )
    error = (
        f"NM1*QC*1*{patient.last}*{patient.first}****MI*{patient.member_id} is not valid here; "
        f"CLP01 {patient.pcn}; PLB03-2 {raw!r} unknown"
    )
    location = {"segment": f"NM1*QC*1*{patient.last}", "element": "NM109", "value": patient.member_id}
    incoming = Incoming(INTAKE.name, 0, 7, b"clinic-phi", value, {})
    record = dead_letter_message("intake", incoming, "invalid_element", error, location)
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["reason"] == "invalid_element" and headers["source_topic"] == "remit.intake.v1"
    for text in headers.values():
        assert not leaks(text, patient), headers
    # a record written before the scrubber existed: `offsetstream dlt list` scrubs as it reads
    old = SimpleNamespace(
        topic=INTAKE.dlt,
        partition=0,
        offset=3,
        timestamp=0,
        key=b"clinic-phi",
        value=value,
        headers=[("reason", b"invalid_element"), ("error", error.encode())]
        + [(f"location.{k}", v.encode()) for k, v in location.items()],
    )
    listed = _to_dead_letter(old)
    # and a log line written while the record is handled (a traceback quoting the failing values)
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.addFilter(phi.LogScrubber())
    logger = logging.getLogger("test.phi.outbound")
    logger.addHandler(handler)
    current = phi.CURRENT_RECORD.set(value)
    try:
        try:
            raise KeyError(error)
        except KeyError:
            logger.error("handler failed on %s for %s", raw, patient.pcn, exc_info=True)
    finally:
        phi.CURRENT_RECORD.reset(current)
        logger.removeHandler(handler)
    assert "Traceback" in lines.getvalue()
    assert not leaks(lines.getvalue(), patient), lines.getvalue()
    row = listed.summary(error_width=None)  # the listing row: its texts (its field names are ours)
    texts = [v for v in row.values() if isinstance(v, str)] + list(row["location"].values())
    for text in [*listed.headers.values(), *texts]:
        assert not leaks(text, patient), text


# --- examples ------------------------------------------------------------------------------------------------


MEDICARE = LAYOUTS["medicare"]


@pytest.mark.parametrize(
    ("raw", "layout", "quoted"),
    [
        ("1234567890123456789ACCT10001", MEDICARE, "1234567890123456789"),  # the probe: 19 + PCN, no blank
        ("FCN26080300017     ACCT10001", MEDICARE, "FCN26080300017"),
        ("FCN26080300017 ACCT10001", MEDICARE, "FCN26080300017"),
        ("12345678901234ADJ000000000001", LAYOUTS["dme"], "12345678901234"),
        ("12345678901234567890", None, "12345678901234…"),
        ("FCN1", None, "FCN1"),
        ("AR-2026-000123", LAYOUTS["plain"], "AR-2026-000123"),
    ],
)
def test_references_are_quoted_without_their_patient_part(
    raw: str, layout: ReferenceLayout | None, quoted: str
) -> None:
    assert phi.quotable_reference(raw, layout) == quoted


def test_a_known_patient_control_number_glued_to_a_short_fcn_takes_nothing_of_itself_along() -> None:
    tokens = phi.Tokens.of(["ACCT10001"])
    assert phi.Scrubber(MEDICARE, tokens).reference("FCN26080300017ACCT10001") == "FCN26080300017"
    assert phi.Scrubber(MEDICARE).reference("FCN26080300017ACCT10001") == "FCN26080300017ACCT1"  # why
    assert phi.Scrubber(LAYOUTS["plain"], tokens).reference("ACCT10001") == phi.REDACTED


def test_all_digit_ids_are_masked_but_amounts_dates_and_ids_are_left_alone() -> None:
    scrubber = phi.Scrubber(None, phi.Tokens.of(["20417555", "731"], ["DOE"]))
    facts = {
        "reference": "FCN1 20417555",
        "balance": "731.00",
        "due_on": "2026-08-18",
        "receivable_id": str(UUID(int=20417555)),
        "note": "Doe paid 731 on 120417555X",
    }
    assert scrubber.facts(facts) == {
        **facts,
        "reference": f"FCN1 {phi.REDACTED}",
        "note": f"{phi.REDACTED} paid {phi.REDACTED} on 1{phi.REDACTED}X",
    }


def test_tokens_are_held_as_digests_never_as_the_values() -> None:
    tokens = phi.Tokens.of(["ACCT10001"], ["DOE"])
    assert "ACCT10001" not in repr(tokens) and "DOE" not in repr(tokens)
    rows = phi.token_rows("id", ["ACCT10001"])
    assert rows == [("id", 9, phi.digest("acct10001"))]
    assert phi.candidates(["see ACCT10001!"], [("id", 9)]) >= {rows[0]}


def test_the_scrubbed_webhook_body_is_the_same_bytes_when_nothing_needed_masking() -> None:
    body = json.dumps({"payload": {"summary": "Overpayment FCN1 settled"}}).encode()
    assert phi.Scrubber(None, phi.Tokens.of(["ACCT10001"])).body(body) is body


def test_tokens_in_a_dead_lettered_event() -> None:
    value = json.dumps(
        {"payload": {"patient_control_number": "ACCT10001", "reference": "1234567890123456789ACCT20417"}}
    ).encode()
    assert phi.Scrubber(None, phi.tokens_in_record(value)).text("ACCT10001 ACCT20417") == (
        f"{phi.REDACTED} {phi.REDACTED}"
    )


_TOKEN_CHARS = st.sampled_from("AB12 -x\t#é")


@settings(max_examples=300, deadline=None)
@given(
    ids=st.lists(st.text(_TOKEN_CHARS, min_size=2, max_size=8), max_size=6),
    text=st.text(_TOKEN_CHARS, max_size=60),
)
def test_the_fast_window_scan_finds_exactly_what_a_digest_of_every_window_finds(
    ids: list[str], text: str
) -> None:
    """The scanner skips windows with a blank at an edge and digests ASCII windows in place; a plain digest of
    every window (the definition) must find the same spans, ASCII or not."""
    tokens = phi.Tokens.of(ids=ids)
    upper = text.upper()
    expected = sorted(
        (begin, begin + length)
        for length, known in tokens.ids.items()
        if length >= phi.MIN_ID_ANYWHERE
        for begin in range(len(upper) - length + 1)
        if phi.digest(upper[begin : begin + length]) in known
    )
    found = sorted(span for span in tokens.spans(text) if span[1] - span[0] >= phi.MIN_ID_ANYWHERE)
    assert found == expected


@settings(max_examples=300, deadline=None)
@given(
    ids=st.lists(st.text(_TOKEN_CHARS, min_size=2, max_size=8), max_size=6),
    texts=st.lists(st.text(_TOKEN_CHARS, max_size=60), min_size=1, max_size=3),
)
def test_looking_for_alphanumeric_tokens_only_inside_runs_finds_every_one_the_full_scan_finds(
    ids: list[str], texts: list[str]
) -> None:
    """``candidates`` digests only windows inside runs of letters and digits for a length whose tokens are all
    alphanumeric (the shape notification keeps per account and length): every known token the full scan finds
    in the texts, it finds too."""
    rows = phi.shaped_token_rows("id", ids)
    tokens = phi.Tokens.of(ids=ids)
    lengths = sorted({(kind, n) for kind, n, _, _ in rows})
    plain = {n for _, n, _, _ in rows} - {n for _, n, _, alnum in rows if not alnum}
    known = {(kind, n, d) for kind, n, d, _ in rows}
    full = phi.candidates(texts, lengths) & known
    assert phi.candidates(texts, lengths, plain) & known == full
    assert {d for _, _, d in full} == {
        d for text in texts for begin, end in tokens.spans(text) if (d := phi.digest(text[begin:end]))
    }


def test_tokens_record_whether_they_are_alphanumeric() -> None:
    rows = phi.shaped_token_rows("id", ["acct10001", "12-3456 7", "AB É1"])
    assert {(n, alnum) for _, n, _, alnum in rows} == {(9, True), (9, False), (4, True), (5, False)}
