"""The console's gatekeeping, without a browser: passwords, signed sessions, CSRF tokens, roles, and the
forecast arithmetic the forecast page shows."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.console import auth, charts, queries

KEY = b"k" * 32


def test_argon2_hash_verifies_only_the_right_password() -> None:
    stored = auth.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert auth.verify_password(stored, "correct horse battery")
    assert not auth.verify_password(stored, "wrong horse battery")
    assert not auth.verify_password(None, "correct horse battery")  # unknown user: same answer, same cost
    with pytest.raises(ValueError, match="12 characters"):
        auth.hash_password("short")


def test_session_cookie_round_trips_and_refuses_forgery_and_expiry() -> None:
    session = auth.new_session("ann", minutes=10, now=1_000)
    value = auth.encode_session(KEY, session)
    assert auth.decode_session(KEY, value, now=1_001) == session
    assert auth.decode_session(KEY, value, now=1_000 + 601) is None  # expired
    assert auth.decode_session(b"x" * 32, value, now=1_001) is None  # another key
    _body, mac = value.split(".")
    forged = auth.encode_session(b"attacker-key-attacker-key-attack", auth.Session("admin", "n", 9_999))
    assert auth.decode_session(KEY, f"{forged.split('.')[0]}.{mac}", now=1_001) is None
    assert auth.decode_session(KEY, "garbage", now=1_001) is None


def test_csrf_token_is_bound_to_the_session_and_renewed_at_login() -> None:
    before = auth.new_session(None, 10)
    token = auth.csrf_token(KEY, before)
    assert auth.csrf_ok(KEY, before, token)
    assert not auth.csrf_ok(KEY, before, None)
    assert not auth.csrf_ok(KEY, None, token)
    after = auth.new_session("ann", 10)  # logging in draws a new nonce: the old token is worthless
    assert not auth.csrf_ok(KEY, after, token)


def test_roles_and_tenant_scope() -> None:
    viewer = auth.User("vic", "viewer", ("clinic-a",))
    admin = auth.User("ada", "admin", ("clinic-a", "clinic-b"))
    assert viewer.may("viewer") and not viewer.may("biller")
    assert admin.may("biller") and admin.may("admin")
    assert viewer.sees("clinic-a") and not viewer.sees("clinic-b")
    assert auth.parse_tenants(["a,b", "b", " c "]) == ("a", "b", "c")


def test_missing_or_short_session_key_refuses_to_start() -> None:
    with pytest.raises(auth.ConsoleSecretMissing):
        auth.check_secret(None)
    with pytest.raises(auth.ConsoleSecretMissing):
        auth.check_secret("too-short")


def test_forecast_counts_balance_once_recoupment_may_start_and_interest_periods_due() -> None:
    today = date(2026, 11, 23)
    rows = [
        # Medicare 75.00 at 11.5 %: recoupment from 12-05 (within 30 days), periods due 12-05, 01-04, 02-03.
        {
            "payer_id": "01312",
            "paused": False,
            "principal_open": Decimal("75.00"),
            "balance": Decimal("75.72"),
            "recoupment_start": today + timedelta(days=12),
            "next_due": today + timedelta(days=12),
            "rate": Decimal("0.11500"),
        },
        # Paused by an appeal: no withholding expected, interest still comes due.
        {
            "payer_id": "01312",
            "paused": True,
            "principal_open": Decimal("100.00"),
            "balance": Decimal("100.00"),
            "recoupment_start": today - timedelta(days=5),
            "next_due": None,
            "rate": None,
        },
    ]
    (payer,) = queries.forecast_rows(rows, today)
    assert payer.withholding == {30: Decimal("75.72"), 60: Decimal("75.72"), 90: Decimal("75.72")}
    assert payer.interest == {30: Decimal("0.72"), 60: Decimal("1.44"), 90: Decimal("2.16")}


def test_charts_escape_labels() -> None:
    svg = charts.grouped_bars([("<script>", [Decimal("1.00")])], ["30 days"], "t")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    line = charts.balance_over_time(
        [(date(2026, 8, 3), Decimal("300.00")), (date(2026, 9, 14), Decimal("2.88"))]
    )
    assert line.startswith("<svg") and "polyline" in line


def test_balance_steps_follow_business_dates_not_recording_order() -> None:
    # FCN26080300017 of the README: 300.00 determined 08-03, recouped 09-14 (2.88 interest + 297.12), interest
    # periods due 09-03 (2.88), 10-03 and 11-02 (0.03 each, recorded after the recoupment): 2.94 on 11-23.
    points = charts.balance_steps(
        (date(2026, 8, 3), Decimal("300.00")),
        [
            (date(2026, 9, 3), Decimal("2.88")),
            (date(2026, 10, 3), Decimal("0.03")),
            (date(2026, 11, 2), Decimal("0.03")),
        ],
        [(date(2026, 9, 14), Decimal("300.00"))],
        [],
        date(2026, 11, 23),
    )
    assert [str(v) for _, v in points] == ["300.00", "302.88", "2.88", "2.91", "2.94", "2.94"]
    assert points[-1][0] == date(2026, 11, 23)


def test_login_throttle_refuses_after_five_failures_until_the_window_passes() -> None:
    throttle = auth.LoginThrottle(limit=5, window=900)
    keys = ("user:ann", "addr:10.0.0.9")
    for attempt in range(5):
        assert throttle.allowed(keys, now=1_000 + attempt)
        throttle.failed(keys, now=1_000 + attempt)
    assert not throttle.allowed(keys, now=1_010)
    assert not throttle.allowed(("user:bob", "addr:10.0.0.9"), now=1_010)  # same address, another name
    assert throttle.allowed(keys, now=1_000 + 905)  # the window has passed
    throttle.succeeded(keys)
    assert throttle.allowed(keys, now=1_010)
