"""Matching's engine on forwarding balances (FB), in memory: a negative FB carries money forward, the positive FB
that takes it closes the balance it names, else the oldest open one that can take it; FBs arriving out of order
end where they would have in order (``tests/integration/test_audit_gap_scenarios.py`` tells these through the
pipeline)."""

from decimal import Decimal

from matching.ledger_story import LedgerStory

D = Decimal


def balances(story: LedgerStory) -> dict[str, tuple[Decimal, Decimal]]:
    """reference → (opened, applied) of every forwarding balance."""
    return {b.reference: (b.opened_amount, b.applied_amount) for b in story.repo.forwardings.values()}


async def test_a_balance_carried_forward_is_closed_by_the_fb_that_names_it() -> None:
    story = LedgerStory()
    opened = await story.pair("FB", "EFT400002", "-180.00", "2026-09-14", trace="EFT400002")
    applied = await story.pair("FB", "EFT400002", "180.00", "2026-10-05", trace="EFT400003")
    assert balances(story) == {"EFT400002": (D("180.00"), D("180.00"))}
    assert story.pairs() == [("FB", "forwarding_balance", D("0.00"))] * 2
    assert story.event_types(opened + applied) == ["ForwardingBalanceOpened", "ForwardingBalanceApplied"]
    assert [p.match_reference for p in story.stored_pairs()] == ["EFT400002", "EFT400002"]


async def test_a_negative_fb_without_reference_is_keyed_by_its_own_trace() -> None:
    story = LedgerStory()
    await story.pair("FB", None, "-75.00", "2026-09-14", trace="EFT410001")
    await story.pair("FB", "EFT410001", "75.00", "2026-10-05", trace="EFT410002")
    assert balances(story) == {"EFT410001": (D("75.00"), D("75.00"))}


async def test_positive_fbs_without_the_opening_reference_close_the_oldest_balance_that_fits() -> None:
    story = LedgerStory()
    # Step: two balances carried forward: 100.00 (older), then 250.00.
    await story.pair("FB", "T1", "-100.00", "2026-06-01", trace="T1")
    await story.pair("FB", "T2", "-250.00", "2026-06-15", trace="T2")
    # Step: an FB of 100.00 with no reference takes the older; one of 250.00 naming the payer's payment
    # number (not a balance) takes the only one that can hold it.
    await story.pair("FB", None, "100.00", "2026-07-01", trace="T3")
    await story.pair("FB", "PAYERPMT0099", "250.00", "2026-07-02", trace="T4")
    assert balances(story) == {"T1": (D("100.00"), D("100.00")), "T2": (D("250.00"), D("250.00"))}
    reasons = [p.reason for p in story.stored_pairs()[2:]]
    assert all("oldest open balance that takes it" in r for r in reasons), reasons


async def test_a_positive_fb_no_balance_can_take_is_kept_under_its_own_key() -> None:
    story = LedgerStory()
    await story.pair("FB", None, "40.00", "2026-07-01", trace="T5")
    assert balances(story) == {"T5": (D("0.00"), D("40.00"))}
    assert "before any open balance could take it" in story.stored_pairs()[0].reason


async def test_a_positive_fb_applied_elsewhere_moves_to_its_balance_when_that_opens() -> None:
    story = LedgerStory()
    await story.pair("FB", "T1", "-100.00", "2026-06-01", trace="T1")
    # Step: an FB naming T2 arrives before T2 was opened: the oldest balance that fits (T1) takes it.
    await story.pair("FB", "T2", "100.00", "2026-07-01", trace="T3")
    assert balances(story) == {"T1": (D("100.00"), D("100.00"))}
    # Step: T2's negative FB arrives: the FB that named it moves there, and T1 is open again.
    await story.pair("FB", "T2", "-100.00", "2026-06-15", trace="T2")
    assert balances(story) == {"T1": (D("100.00"), D("0.00")), "T2": (D("100.00"), D("100.00"))}
    moved = next(p for p in story.stored_pairs() if p.amount > 0)
    assert moved.match_reference == "T2"
    assert "it arrived after this payment" in moved.reason


async def test_an_fb_kept_on_no_balance_joins_the_balance_opened_later() -> None:
    story = LedgerStory()
    await story.pair("FB", None, "60.00", "2026-07-01", trace="T6")
    await story.pair("FB", "T7", "-60.00", "2026-06-20", trace="T7")
    assert balances(story) == {"T7": (D("60.00"), D("60.00"))}


async def test_the_fb_naming_a_balance_reclaims_it_from_an_unnamed_one() -> None:
    story = LedgerStory()
    await story.pair("FB", "T1", "-100.00", "2026-06-01", trace="T1")
    await story.pair("FB", "T2", "-100.00", "2026-06-15", trace="T2")
    # Step: an unreferenced FB takes the oldest balance, T1 …
    await story.pair("FB", None, "100.00", "2026-07-01", trace="T3")
    # … then the FB that names T1 arrives: the unnamed one moves to T2, and T1 is closed by its own FB.
    await story.pair("FB", "T1", "100.00", "2026-07-02", trace="T4")
    assert balances(story) == {"T1": (D("100.00"), D("100.00")), "T2": (D("100.00"), D("100.00"))}
    unnamed = story.stored_pairs()[2]
    assert unnamed.match_reference == "T2"
    assert "T2 applied (oldest open balance that takes it" in unnamed.reason
