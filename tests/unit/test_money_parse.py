"""contracts.money.to_money: amounts read from text are remembered by their text (a hot path: every amount of
every message), which must not change what an amount is or let a refused one through."""

from decimal import Decimal

import pytest

from contracts import money
from contracts.money import to_money


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("1.005", "1.01"),
        ("-0.5", "-0.50"),
        ("12", "12.00"),
        ("1e2", "100.00"),
        ("-2.345", "-2.35"),
        ("0", "0.00"),
    ],
)
def test_text_is_quantized_half_up_the_first_time_and_after(text: str, amount: str) -> None:
    first, again = to_money(text), to_money(text)
    assert first == again == Decimal(amount)
    assert str(first) == str(again) == amount


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-inf", "abc", "", "1,00"])
def test_refused_text_stays_refused(bad: str) -> None:
    for _ in range(2):
        with pytest.raises(ValueError):
            to_money(bad)
    assert bad not in money._seen


def test_other_types_are_not_remembered() -> None:
    assert to_money(Decimal("2.345")) == Decimal("2.35")
    assert to_money(3) == Decimal("3.00")
    with pytest.raises(ValueError, match="never a float"):
        to_money(1.5)


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(money, "_SEEN_LIMIT", 4)
    monkeypatch.setattr(money, "_seen", {})
    for cents in range(10):
        assert to_money(f"1.{cents:02d}") == Decimal(f"1.{cents:02d}")
        assert len(money._seen) <= 4


def test_long_texts_are_read_but_not_remembered() -> None:
    padded = "0" * 10_000 + "12.5"
    assert to_money(padded) == Decimal("12.50")
    assert padded not in money._seen
