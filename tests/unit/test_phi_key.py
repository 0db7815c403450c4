"""PHI digests are keyed by the deployment's secret (``OFFSETSTREAM_PHI_KEY``): a short patient control number
cannot be recovered from ``remit.patient-tokens.v1`` or ``notification.sensitive_tokens`` by digesting every
number, and the stages that publish or compare digests refuse to start without a usable key."""

import hashlib
from collections.abc import Iterator

import pytest

from services.intake import app as intake_app
from services.notification import app as notification_app
from shared import phi
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
