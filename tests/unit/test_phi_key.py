"""PHI digests are keyed by the deployment's secret (``OFFSETSTREAM_PHI_KEY``): a short patient control number
cannot be recovered from ``remit.patient-tokens.v1`` or ``notification.sensitive_tokens`` by digesting every
number, and the stages that publish or compare digests refuse to start without a usable key."""

import hashlib
from collections.abc import Iterator

import pytest
from x12_builder import Claim, Transaction, build_835, parse_all, remittances

from contracts.topics import PATIENT_TOKENS
from services.intake import app as intake_app
from services.intake import domain
from services.notification import app as notification_app
from services.notification import learn
from shared import phi
from shared.messages import Incoming, Rejected
from shared.settings import Settings

KEY_A = "a" * 16 + "-first-phi-key-of-a-deployment"
KEY_B = "b" * 16 + "-other-phi-key-of-a-deployment"


@pytest.fixture
def keyed_state() -> Iterator[None]:
    """Whatever a test configures, the session's key comes back afterwards (tests/conftest.py)."""
    saved = (phi._KEYING.blake, phi._KEYING.keyed)
    try:
        yield
    finally:
        phi._KEYING.blake, phi._KEYING.keyed = saved


def test_digests_depend_on_the_key_and_are_not_the_unkeyed_hash(keyed_state: None) -> None:
    phi.configure_key(KEY_A)
    under_a = phi.digest("123456")
    assert phi.digest(" 123456 ") == under_a  # normalised first, as before
    phi.configure_key(KEY_B)
    assert phi.digest("123456") != under_a
    unkeyed = hashlib.blake2b(b"123456", digest_size=16, person=b"offsetstream-phi").hexdigest()
    assert under_a != unkeyed
    # Brute force without the key finds nothing: no six-digit number digests, unkeyed, to the stored value.
    phi.configure_key(KEY_A)
    assert phi.shaped_token_rows("id", ["123456"]) == [("id", 6, under_a, True)]


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        (None, "is not set"),
        ("", "it is empty"),
        ("change-me", "it is a placeholder"),
        ("short-key", "shorter than 32"),
    ],
)
def test_a_missing_or_weak_key_is_refused_without_quoting_it(
    keyed_state: None, secret: str | None, why: str
) -> None:
    with pytest.raises(phi.PhiKeyError, match=why) as refused:
        phi.configure_key(secret)
    assert "OFFSETSTREAM_PHI_KEY" in str(refused.value)
    if secret:
        assert secret not in str(refused.value)


def test_digests_to_publish_or_compare_are_refused_while_unkeyed(keyed_state: None) -> None:
    phi._KEYING.keyed = False
    with pytest.raises(phi.PhiKeyError):
        phi.shaped_token_rows("id", ["123456"])
    with pytest.raises(phi.PhiKeyError):
        phi.candidates(["REF 123456"], [("id", 6)])
    # In-process masking (a dead letter's own patients) needs no key: the same process digests both sides.
    assert phi.Tokens.of(ids=["123456"]).mask("REF 123456") == f"REF {phi.REDACTED}"


@pytest.mark.parametrize("app", [intake_app, notification_app], ids=["intake", "notification"])
def test_intake_and_notification_refuse_to_start_without_a_key(keyed_state: None, app: object) -> None:
    settings = Settings(phi_key=None, database_url="postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(phi.PhiKeyError, match="OFFSETSTREAM_PHI_KEY"):
        app.from_environment(settings)  # type: ignore[attr-defined]


def test_the_key_id_names_the_key_without_matching_any_token(keyed_state: None) -> None:
    phi.configure_key(KEY_A)
    under_a = phi.key_id()
    assert len(under_a) == 16 and under_a not in {phi.digest("key id"), phi.digest("KEY ID")}
    phi.configure_key(KEY_B)
    assert phi.key_id() != under_a
    phi.configure_key(KEY_A)
    assert phi.key_id() == under_a
    phi._KEYING.keyed = False
    with pytest.raises(phi.PhiKeyError):
        phi.key_id()


def test_notification_refuses_patient_tokens_made_under_another_key(keyed_state: None) -> None:
    """Digests made under intake's key are learnt only by a notification holding the same key; under another
    they would match nothing and leave the numbers unmasked, so the event is dead-lettered, naming the two keys
    by their ids (never the keys), and learnt once replayed after the configuration is fixed."""
    [parsed] = remittances(parse_all(build_835(Transaction(claims=[Claim("100234"), Claim("ACCT-000117")]))))
    phi.configure_key(KEY_A)
    [(_, env)] = domain.token_events("t1", parsed)
    assert env.payload.key_id == phi.key_id()
    record = Incoming(PATIENT_TOKENS.name, 0, 0, None, env.to_bytes())
    assert {t.digest for t in learn.tokens_of(record)} == {t.digest for t in env.payload.tokens}
    phi.configure_key(KEY_B)
    with pytest.raises(Rejected) as refused:
        learn.tokens_of(record)
    assert refused.value.reason == "phi_key_mismatch"
    assert KEY_A not in refused.value.message and KEY_B not in refused.value.message
    # An event from before key ids existed is learnt as it comes.
    old = env.model_copy(update={"payload": env.payload.model_copy(update={"key_id": None})})
    assert learn.tokens_of(Incoming(PATIENT_TOKENS.name, 0, 1, None, old.to_bytes()))
