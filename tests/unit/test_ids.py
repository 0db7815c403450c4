"""shared.ids.stable_id is uuid5 built by hand for speed: it must stay exactly uuid5, or every event id, and so
every idempotency claim and ledger key, would change between versions."""

from uuid import UUID, uuid4, uuid5

from hypothesis import given
from hypothesis import strategies as st

from shared.ids import NAMESPACE, receivable_id, stable_id, stable_ids

_parts = st.lists(
    st.one_of(st.text(st.characters(exclude_categories=["Cs"])), st.integers(), st.uuids()), max_size=5
)


@given(_parts)
def test_stable_id_is_uuid5_of_the_joined_parts(parts: list[object]) -> None:
    made = stable_id(*parts)
    assert made == uuid5(NAMESPACE, "\x1f".join(str(p) for p in parts))
    assert (made.version, made.variant) == (5, "specified in RFC 4122")


def test_known_ids_do_not_move() -> None:
    """Values fixed when the ids were defined: a change here re-keys every ledger."""
    assert stable_id("receivable", "t1", "01312", "REF-1") == uuid5(
        NAMESPACE, "receivable\x1ft1\x1f01312\x1fREF-1"
    )
    assert receivable_id("t1", "01312", "REF-1") == stable_id("receivable", "t1", "01312", "REF-1")
    remittance = UUID("12345678-1234-5678-1234-567812345678")
    assert str(stable_id(remittance, "claim", 3)) == str(uuid5(NAMESPACE, f"{remittance}\x1fclaim\x1f3"))
    assert stable_id(uuid4()) != stable_id(uuid4())


_lasts = st.lists(st.one_of(st.text(st.characters(exclude_categories=["Cs"])), st.integers()), max_size=5)


@given(_parts, _lasts)
def test_stable_ids_are_the_stable_ids_of_the_head_and_each_last(
    parts: list[object], lasts: list[object]
) -> None:
    assert stable_ids(parts, lasts) == [stable_id(*parts, last) for last in lasts]
