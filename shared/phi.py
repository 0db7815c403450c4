"""The one outbound PHI scrubber: nothing that leaves offsetstream carries a patient's control number, member id or
name — webhooks, e-mail, ``remit.notifications.v1``, ``remit.alerts.v1``, DLT headers, ``offsetstream dlt``.

Two layers, both here so every outbound surface applies the same rules:

1. **References by layout** (:func:`quotable_reference`). A PLB reference can carry a patient control number
   after its FCN, padded or not (``contracts.references``). Only the part the payer's layout calls the receivable
   key is ever quoted. When the layout is not known the quote is conservative: the first token, cut to the
   narrowest FCN field of any layout (14 positions) and marked ``…`` — a prefix no layout puts a patient number
   in.
2. **Known tokens** (:class:`Tokens`, :class:`Scrubber`). Whatever the layout missed — an FCN shorter than its
   field with the patient control number glued to it, a payer writing a member id into a free-text field, an
   error message quoting a segment — is masked by value: the account's patient control numbers and member ids
   anywhere in the text (case-insensitive, also inside a longer identifier), patient names as whole words or
   inside an identifier (a run of letters and digits). Tokens are held as keyed digests (BLAKE2b) so the table
   that feeds them is not itself a readable list of PHI; the scrubber hashes each window of the outgoing text.

Tokens come from the record itself where it is at hand (a dead-lettered 835 names its patients:
:func:`tokens_in_record`) and, for notifications, from the patient control numbers notification learns per
account from the claim and overpayment events (``services.notification.store``). Patient names and member ids
never cross a topic (``contracts.events``): they exist only in the payer file, where intake and the DLT tools
read them from.

What the scrubber cannot do: mask a value it was never told about that also hides inside a reference's FCN
field. That is why layer 1 exists and why every stage quotes references through it.
"""

import base64
import hashlib
import json
import logging
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import SecretStr

from contracts.events import AlertRaised
from contracts.references import LAYOUTS, ReferenceLayout

TokenKind = Literal["id", "name"]
REDACTED = "[redacted]"
CUT = "…"
SAFE_PREFIX = min(w for w in (lay.fcn_width for lay in LAYOUTS.values()) if w is not None)
"""Positions of a reference that are the FCN in every fixed-width layout (DME's 14): quoted when the layout is
not known."""
MIN_ID = 2
"""Shorter ids and names (a middle initial, a one-digit account) identify nobody and would mask every digit."""
MIN_ID_ANYWHERE = 4
"""Ids this long are masked inside longer text too (an FCN with the patient control number glued to it);
shorter ones only as a whole run of letters and digits."""
NAME_PARTS = ("QC", "IL", "74", "QD")
"""NM101 entity codes of an 835 that name a patient or insured (patient, insured, corrected patient/insured)."""
_PERSON = b"offsetstream-phi"
_RUN = re.compile(r"[A-Za-z0-9]+")
_ALPHANUMERIC = re.compile(r"[A-Z0-9]+")
_SPLIT = re.compile(r"[^A-Za-z0-9]+")
EXEMPT = re.compile(
    r"^(?:-?\d+\.\d{2}|\d{4}-\d{2}-\d{2}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
"""Fact values that are an amount, an ISO date or a UUID: system-made, never PHI, never rewritten."""
HEADER_LIMIT = 1000
"""DLT headers are cut at this many characters (``shared.batches.dead_letter_message``)."""
FIXED_HEADERS = frozenset(
    {"reason", "service", "source_topic", "source_partition", "source_offset", "replayed_from"}
)
"""DLT headers with bounded, system-made values (replay reads them): never rewritten."""


# --- layer 1: references by layout ------------------------------------------------------------------------------


def quotable_reference(raw: str | None, layout: ReferenceLayout | None) -> str | None:
    """The part of a PLB reference (or receivable key) that may be quoted outside: the receivable key of the
    payer's layout, padded or not, up to its first blank in a fixed-width layout; with no layout, the first
    token cut to :data:`SAFE_PREFIX` positions."""
    if raw is None or not raw.strip():
        return None
    if layout is not None:
        key = layout.parse(raw).receivable
        if key is None or layout.fcn_width is None:
            return key
        return key.split()[0]  # an FCN has no blanks: what follows one (DME reads by position) is not the FCN
    first = raw.split()[0]
    return first if len(first) <= SAFE_PREFIX else first[:SAFE_PREFIX] + CUT


def patient_parts(raw: str | None, layout: ReferenceLayout | None = None) -> set[str]:
    """What the layout (None: any layout) reads as the patient part of a reference, to mask as ids wherever
    they appear."""
    found: set[str] = set()
    for lay in LAYOUTS.values() if layout is None else (layout,):
        secondary = lay.parse(raw).secondary
        if secondary:
            found.add(secondary)
    return found


# --- layer 2: known tokens ------------------------------------------------------------------------------------


def normalise(token: str) -> str:
    """Case and surrounding blanks never make a token different."""
    return token.strip().upper()


@dataclass
class _Keying:
    """The digest's parameters, set once (:func:`configure_key`): copying a prepared hash is about twice as fast
    as building one, and the scanner below takes a digest of every window of every outbound text. Until a key
    is configured the digest is unkeyed, which is enough for tokens that never leave the process (a dead
    letter's own patients, :func:`tokens_in_record`) and refused for those that are published or stored
    (:func:`shaped_token_rows`, :func:`candidates`)."""

    blake: hashlib.blake2b = field(default_factory=lambda: hashlib.blake2b(digest_size=16, person=_PERSON))
    keyed: bool = False
    key_id: str = ""
    """Names the key without revealing it (:func:`key_id`)."""


_KEYING = _Keying()
_KEY_DERIVATION = b"offsetstream phi digest key v1:"


class PhiKeyError(ValueError):
    """No usable ``OFFSETSTREAM_PHI_KEY`` where digests are published or stored. Messages name the setting,
    never the value."""


def configure_key(secret: SecretStr | str | None) -> None:
    """Key every digest of this process with the deployment's secret (``OFFSETSTREAM_PHI_KEY``); intake and
    notification call it when they are built, and refuse to start without a usable key.

    Why a key: a patient control number is often a short run of digits. Unkeyed, anyone who can read
    ``remit.patient-tokens.v1`` or ``notification.sensitive_tokens`` could digest every number up to ten digits
    and read the table back as PHI. Keyed, the digests are only comparable by a process that holds the key.
    Intake (which publishes digests) and notification (which stores and compares them) must hold the same
    one; changing it makes what notification learnt unreadable until ``offsetstream phi relearn`` runs."""
    from shared.webhook import weakness  # the same rules as every other secret of the deployment

    if secret is None:
        raise PhiKeyError(
            "OFFSETSTREAM_PHI_KEY is not set: intake and notification key the digests of patient control numbers "
            "with it; generate one with python -c 'import secrets; print(secrets.token_hex(32))' and give both "
            "the same value"
        )
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if why := weakness(value):
        raise PhiKeyError(f"OFFSETSTREAM_PHI_KEY cannot key PHI digests: {why}")
    key = hashlib.sha256(_KEY_DERIVATION + value.encode()).digest()
    _KEYING.blake = hashlib.blake2b(digest_size=16, person=_PERSON, key=key)
    _KEYING.keyed = True
    _KEYING.key_id = hashlib.blake2b(
        b"key id", digest_size=8, person=b"offsetstream-kid", key=key
    ).hexdigest()


def key_id() -> str:
    """A short public name of this process's PHI key: a keyed digest of a constant, under a personalisation no
    token digest uses, so it says nothing about any token or about the key. Intake puts it on every patient
    tokens event and notification compares it with its own: digests made under another key would match
    nothing, and learning them would leave those patients' numbers unmasked without a word."""
    _require_key("a PHI key id")
    return _KEYING.key_id


def _require_key(what: str) -> None:
    """Refuse ``what`` (digests that are published, stored or compared with stored ones) while unkeyed."""
    if not _KEYING.keyed:
        raise PhiKeyError(f"{what} needs OFFSETSTREAM_PHI_KEY (shared.phi.configure_key)")


_ASCII_SPACE = frozenset(i for i in range(128) if chr(i).isspace())


def digest(token: str) -> str:
    """Keyed digest of one normalised token (what notification stores per account)."""
    return _digest_bytes(normalise(token).encode())


def _digest_bytes(data: bytes | memoryview) -> str:
    h = _KEYING.blake.copy()
    h.update(data)
    return h.hexdigest()


def token_rows(kind: TokenKind, values: Iterable[str]) -> list[tuple[TokenKind, int, str]]:
    """(kind, length, digest) of every value worth masking; names are split into their words. For tokens kept
    in this process (:class:`Tokens`), keyed or not."""
    return sorted({(k, n, d) for k, n, d, _ in _shaped_rows(kind, values)})


def shaped_token_rows(kind: TokenKind, values: Iterable[str]) -> list[tuple[TokenKind, int, str, bool]]:
    """(kind, length, digest, alphanumeric) of every value worth masking: :func:`token_rows` with whether the
    normalised token is ASCII letters and digits only. Kept per account and length (never per token), it lets
    :func:`candidates` look for tokens of a length whose tokens are all alphanumeric only inside runs of
    letters and digits, the only place such a token can sit.

    These rows are published (intake) or stored (notification), so they are made only with a configured key
    (:func:`configure_key`): an unkeyed digest of a short number is the number."""
    _require_key("making PHI digests to publish or store")
    return _shaped_rows(kind, values)


def _shaped_rows(kind: TokenKind, values: Iterable[str]) -> list[tuple[TokenKind, int, str, bool]]:
    rows: set[tuple[TokenKind, int, str, bool]] = set()
    for value in values:
        if kind == "name":
            parts = [p for p in _SPLIT.split(value) if p]
        else:  # the id as written, and its alphanumeric pieces when it has separators (1234-5678)
            parts = [value, *(p for p in _SPLIT.split(value) if len(p) >= MIN_ID_ANYWHERE)]
        for part in parts:
            token = normalise(part)
            if len(token) >= MIN_ID:
                rows.add(
                    (
                        kind,
                        len(token),
                        _digest_bytes(token.encode()),
                        _ALPHANUMERIC.fullmatch(token) is not None,
                    )
                )
    return sorted(rows)


@dataclass(frozen=True)
class Tokens:
    """Digests of the sensitive values of one account (or tenant), by kind and length."""

    ids: Mapping[int, frozenset[str]] = field(default_factory=dict)
    names: Mapping[int, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, int, str]]) -> "Tokens":
        """From stored (kind, length, digest) rows."""
        ids: dict[int, set[str]] = {}
        names: dict[int, set[str]] = {}
        for kind, length, value in rows:
            (names if kind == "name" else ids).setdefault(int(length), set()).add(value)
        return cls({k: frozenset(v) for k, v in ids.items()}, {k: frozenset(v) for k, v in names.items()})

    @classmethod
    def of(cls, ids: Iterable[str] = (), names: Iterable[str] = ()) -> "Tokens":
        """From clear values (a record at hand, tests)."""
        return cls.from_rows([*token_rows("id", ids), *token_rows("name", names)])

    def __or__(self, other: "Tokens") -> "Tokens":
        ids = {
            k: self.ids.get(k, frozenset()) | other.ids.get(k, frozenset()) for k in {*self.ids, *other.ids}
        }
        names = {
            k: self.names.get(k, frozenset()) | other.names.get(k, frozenset())
            for k in {*self.names, *other.names}
        }
        return Tokens(ids, names)

    def __bool__(self) -> bool:
        return bool(self.ids or self.names)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where known tokens sit in ``text`` (overlapping spans allowed)."""
        # Nothing to find: most quotes and messages (a scan returns only the tokens a text holds).
        if not self:
            return []
        known = {"id": self.ids, "name": self.names}
        return [
            (begin, end)
            for kind, length, begin, end, value in _windows(text, self.ids, self.names)
            if value in known[kind].get(length, ())
        ]

    def mask(self, text: str) -> str:
        """``text`` with every known token replaced by :data:`REDACTED`, again until nothing changes: masking an
        id glued to a name makes the name a word of its own (``SMITH[redacted]``)."""
        for _ in range(4):
            masked = self._mask_once(text)
            if masked == text:
                break
            text = masked
        return text

    def _mask_once(self, text: str) -> str:
        if not self or not text:
            return text
        spans = sorted(self.spans(text))
        if not spans:
            return text
        out, at = [], 0
        for start, end in spans:
            if end <= at:
                continue
            if start >= at:
                out.append(text[at:start])
                out.append(REDACTED)
            at = max(at, end)
        out.append(text[at:])
        return "".join(out)


NO_TOKENS = Tokens()


def _windows(
    text: str, id_lengths: Iterable[int], name_lengths: Iterable[int]
) -> Iterable[tuple[TokenKind, int, int, int, str]]:
    """(kind, length, start, end, digest) of every place a token of those lengths could sit: ids of
    :data:`MIN_ID_ANYWHERE` or more anywhere, shorter ids and names as a whole run of letters and digits, and
    names of that length inside a run that has digits (an identifier a name was glued to)."""
    upper = text.upper()
    ids, names = sorted(set(id_lengths)), sorted(set(name_lengths))
    yield from _anywhere_windows(upper, [n for n in ids if n >= MIN_ID_ANYWHERE])
    for run in _RUN.finditer(upper):
        word, begin = run.group(), run.start()
        if len(word) < MIN_ID_ANYWHERE and len(word) in ids:
            yield "id", len(word), begin, run.end(), digest(word)
        if any(c.isdigit() for c in word):
            for length in (n for n in names if n >= MIN_ID_ANYWHERE):
                for offset in range(len(word) - length + 1):
                    at = begin + offset
                    yield "name", length, at, at + length, digest(word[offset : offset + length])
        elif len(word) in names:
            yield "name", len(word), begin, run.end(), digest(word)


def _anywhere_windows(upper: str, lengths: list[int]) -> Iterable[tuple[TokenKind, int, int, int, str]]:
    """Every window of ``upper`` of those lengths (ids masked anywhere, glued to other text included)."""
    data = upper.encode()
    if len(data) == len(upper):  # ASCII (nearly always): digest the window's bytes in place
        view = memoryview(data)
        for length in lengths:
            for begin in range(len(data) - length + 1):
                end = begin + length
                # a window with a blank at either edge normalises to a shorter text, so it cannot be a token
                # of this length (tokens are stored by their normalised length): skip its digest
                if data[begin] not in _ASCII_SPACE and data[end - 1] not in _ASCII_SPACE:
                    yield "id", length, begin, end, _digest_bytes(view[begin:end])
        return
    for length in lengths:
        for begin in range(len(upper) - length + 1):
            yield "id", length, begin, begin + length, digest(upper[begin : begin + length])


def candidates(
    texts: Sequence[str], lengths: Iterable[tuple[str, int]], alphanumeric: Collection[int] = ()
) -> set[tuple[TokenKind, int, str]]:
    """(kind, length, digest) of every window of ``texts`` a token of those (kind, length)s could fill: what
    to look up in a table of digests (``services.notification.store.tokens_in``).

    ``alphanumeric``: id lengths whose tokens are all ASCII letters and digits (:func:`shaped_token_rows`).
    Such a token, glued to other text or not, lies inside one run of letters and digits of the upper-cased
    text, so only windows inside those runs are digested (each distinct run once) — in prose with dates and
    amounts a fraction of every window; a length with any other token is looked for everywhere."""
    # Unkeyed windows would match no stored digest, and every token would go out unmasked.
    _require_key("looking up stored PHI digests")
    pairs = list(lengths)
    id_lengths = [n for k, n in pairs if k == "id"]
    name_lengths = [n for k, n in pairs if k == "name"]
    in_runs = sorted({n for n in id_lengths if n >= MIN_ID_ANYWHERE and n in alphanumeric})
    elsewhere = [n for n in id_lengths if n not in in_runs]
    found: set[tuple[TokenKind, int, str]] = set()
    if elsewhere or name_lengths:
        found = {
            (kind, length, value)
            for text in texts
            for kind, length, _, _, value in _windows(text, elsewhere, name_lengths)
        }
    if in_runs:
        found |= _run_windows({run for text in texts for run in _RUN.findall(text.upper())}, in_runs)
    return found


def _run_windows(runs: Iterable[str], lengths: list[int]) -> set[tuple[TokenKind, int, str]]:
    """Every window of those (ascending) lengths inside each run of ASCII letters and digits."""
    copy = _KEYING.blake.copy
    found: set[tuple[TokenKind, int, str]] = set()
    add = found.add
    for run in runs:
        view = memoryview(run.encode())
        size = len(view)
        for length in lengths:
            if length > size:
                break
            for begin in range(size - length + 1):
                h = copy()
                h.update(view[begin : begin + length])
                add(("id", length, h.hexdigest()))
    return found


@dataclass(frozen=True)
class Scrubber:
    """Both layers for one outbound message: the payer's reference layout (None: not known) and the tokens of
    the account it is about."""

    layout: ReferenceLayout | None = None
    tokens: Tokens = NO_TOKENS

    def reference(self, raw: str | None) -> str | None:
        """A reference as it may be quoted: cut before the first known token (a patient control number glued
        to an FCN shorter than its field leaves nothing of itself, not even the part the layout would keep),
        then its receivable key by layout, then known tokens masked."""
        if raw is None or not raw.strip():
            return None
        text = raw.strip()
        spans = self.tokens.spans(text)
        if spans:
            text = text[: min(begin for begin, _ in spans)].strip()
            if not text:
                return REDACTED
        quoted = quotable_reference(text, self.layout)
        return None if quoted is None else self.tokens.mask(quoted)

    def text(self, text: str) -> str:
        """Free text with known tokens masked."""
        return self.tokens.mask(text)

    def facts(self, facts: Mapping[str, str]) -> dict[str, str]:
        """Fact values with known tokens masked (amounts, dates and ids as they are)."""
        if not self.tokens:
            return dict(facts)
        return {k: v if EXEMPT.match(v) else self.tokens.mask(v) for k, v in facts.items()}

    def json_text(self, value: Any) -> Any:
        """Every string inside a decoded JSON document, masked."""
        if isinstance(value, str):
            return value if EXEMPT.match(value) else self.tokens.mask(value)
        if isinstance(value, list):
            return [self.json_text(v) for v in value]
        if isinstance(value, dict):
            return {k: self.json_text(v) for k, v in value.items()}
        return value

    def body(self, body: bytes) -> bytes:
        """A JSON body (the notification envelope a webhook posts) with known tokens masked; the same bytes
        when nothing needed masking, so a signature over them stays what the receiver expects."""
        if not self.tokens:
            return body
        try:
            doc = json.loads(body)
        except ValueError:
            return self.tokens.mask(body.decode("utf-8", errors="replace")).encode()
        scrubbed = self.json_text(doc)
        return body if scrubbed == doc else json.dumps(scrubbed, separators=(",", ":")).encode()


def reference_text(raw: str | None, layout: ReferenceLayout | None) -> str:
    """A reference for a sentence an outbound message is built from (an alert's detail, a matching reason):
    its quotable part with whatever any layout reads as the patient part masked, or ``(no reference)``."""
    quoted = Scrubber(layout).reference(raw)
    return Tokens.of(patient_parts(raw, layout)).mask(quoted) if quoted else "(no reference)"


def safe_alert(alert: AlertRaised, layout: ReferenceLayout | None, tokens: Tokens = NO_TOKENS) -> AlertRaised:
    """An alert as ``remit.alerts.v1`` may carry it: its reference quoted by the payer's layout, and its detail
    with the raw reference replaced by that quote and the patient part of the reference (by the layout, by any
    layout when it is not known) and every known token masked. Every alert producer builds its payload through this."""
    detail = alert.detail
    raw = (alert.reference or "").strip()
    quoted = Scrubber(layout, tokens).reference(alert.reference)
    if raw and quoted is not None and raw != quoted:
        detail = detail.replace(raw, quoted)
    masked = (tokens | Tokens.of(patient_parts(alert.reference, layout))).mask(detail)
    return alert.model_copy(update={"reference": quoted, "detail": masked})


def quoted_texts(payload: Any) -> list[str]:
    """The references (and alert details) an event carries, where a notification's quotes come from: the
    texts whose known tokens must be looked up before quoting (``services.notification.engine``)."""
    doc = payload.model_dump(mode="json") if hasattr(payload, "model_dump") else payload
    return [v for k, v in _walk(doc) if k in ("reference", "detail") and isinstance(v, str) and v]


# --- where tokens come from ------------------------------------------------------------------------------------


def tokens_in_x12(text: str) -> tuple[set[str], set[str]]:
    """(ids, names) an 835 names: CLP01 patient control numbers, NM109 member ids and NM103–105 names of
    patients and insureds, and what any layout reads as the patient part of a PLB reference."""
    ids: set[str] = set()
    names: set[str] = set()
    start = text.find("ISA")
    if start < 0 or len(text) < start + 106:
        return ids, names
    element, component, terminator = text[start + 3], text[start + 104], text[start + 105]
    for segment in text[start:].split(terminator):
        fields = segment.strip().split(element)
        tag = fields[0]
        if tag == "CLP" and len(fields) > 1:
            ids.add(fields[1])
        elif tag == "NM1" and len(fields) > 1 and fields[1] in NAME_PARTS:
            names |= {fields[i] for i in (3, 4, 5) if i < len(fields) and fields[i]}
            if len(fields) > 9 and fields[9]:
                ids.add(fields[9])
        elif tag == "PLB":
            for item in fields[3::2]:
                ids |= patient_parts(item.partition(component)[2])
    return {i for i in ids if i.strip()}, {n for n in names if n.strip()}


def tokens_in_record(value: bytes) -> Tokens:
    """The sensitive values a Kafka record carries itself: an intake envelope's payer file (names, member ids,
    patient control numbers), an event's patient control number(s), the patient part of its reference."""
    try:
        doc = json.loads(value)
    except ValueError:
        return Tokens.of(*tokens_in_x12(value.decode("utf-8", errors="replace")))
    ids: set[str] = set()
    names: set[str] = set()
    for key, found in _walk(doc):
        if key == "patient_control_number" and isinstance(found, str):
            ids.add(found)
        elif key == "patient_control_numbers" and isinstance(found, list):
            ids |= {v for v in found if isinstance(v, str)}
        elif key == "reference" and isinstance(found, str):
            ids |= patient_parts(found)
        elif key == "content" and isinstance(found, str):
            try:
                raw = base64.urlsafe_b64decode(found + "=" * (-len(found) % 4))
            except ValueError:
                continue
            more_ids, more_names = tokens_in_x12(raw.decode("utf-8", errors="replace"))
            ids |= more_ids
            names |= more_names
    return Tokens.of(ids, names)


def _walk(doc: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _walk(value)


def dead_letter_headers(headers: Sequence[tuple[str, str]], record: bytes) -> list[tuple[str, str]]:
    """DLT headers with whatever the dead-lettered record names of its patients masked in every free-text
    header (error, location.*); the bounded ones replay reads are left as they are."""
    tokens = tokens_in_record(record)
    scrub = Scrubber(None, tokens)
    return [(k, v if k in FIXED_HEADERS else _cut_tail(scrub.text(v))) for k, v in headers]


def _cut_tail(value: str) -> str:
    """A header cut at :data:`HEADER_LIMIT` may end in the first half of a token the scrubber cannot
    recognise any more: its last run of letters and digits goes too."""
    if len(value) < HEADER_LIMIT:
        return value
    return re.sub(r"[A-Za-z0-9]+$", REDACTED, value)


# --- logs ---------------------------------------------------------------------------------------------------


CURRENT_RECORD: ContextVar[bytes | tuple[bytes, ...] | None] = ContextVar(
    "offsetstream_phi_record", default=None
)
"""The input a stage's handler is working on, or the inputs of a batch handler (``shared.batches`` sets it
around each handler call), so a log line written meanwhile — a traceback quoting a database error's key values, say — can be scrubbed of what that
input names."""


class LogScrubber(logging.Filter):
    """A handler filter: a log line written while an input is being handled has that input's patient names,
    member ids and patient control numbers (and the patient part of its references) masked, in the message and
    in the traceback. The tokens are read from the input only when a line is actually written."""

    def filter(self, record: logging.LogRecord) -> bool:
        value = CURRENT_RECORD.get()
        if value is None:
            return True
        tokens = Tokens()
        for one in (value,) if isinstance(value, bytes) else value:
            tokens |= tokens_in_record(one)
        if not tokens:
            return True
        record.msg, record.args = tokens.mask(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = tokens.mask(record.exc_text)
        return True
