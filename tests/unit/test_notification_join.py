"""The "offset applied" join laid on in order (``rows.joined``): the half that arrives second announces the
application once, with the row as it was then, whichever half came first and whatever was stored before."""

from datetime import date
from decimal import Decimal
from uuid import UUID

from services.notification.rows import AllocationHalf, BalanceHalf, Half, JoinRow, joined

D = Decimal
OFFSET, RECEIVABLE = UUID(int=1), UUID(int=2)


def allocation(principal: str, reference: str = "FCN1") -> AllocationHalf:
    return AllocationHalf(
        "t", OFFSET, RECEIVABLE, "acct", reference, "EFT1", date(2026, 9, 1), "WO", D("0.00"), D(principal)
    )


def balance(after: str) -> BalanceHalf:
    return BalanceHalf("t", OFFSET, RECEIVABLE, D(after), "open")


def test_the_second_half_announces_in_either_order() -> None:
    orders: list[tuple[list[Half], int]] = [
        ([allocation("100.00"), balance("200.00")], 1),
        ([balance("200.00"), allocation("100.00")], 1),
    ]
    for halves, second in orders:
        rows, completed = joined({}, halves)
        [(position, app)] = completed
        assert position == second
        assert (app.applied, app.balance_after, app.reference) == (D("100.00"), D("200.00"), "FCN1")
        assert rows[("t", OFFSET, RECEIVABLE)].notified


def test_a_half_stored_before_the_batch_is_completed_by_the_first_half_of_the_batch() -> None:
    stored = JoinRow("t", OFFSET, RECEIVABLE, balance_after=D("200.00"), status_after="open")
    _, completed = joined({stored.key: stored}, [allocation("100.00"), allocation("150.00")])
    assert [(position, app.applied) for position, app in completed] == [(0, D("100.00"))]


def test_an_application_announced_before_is_never_announced_again() -> None:
    rows, _ = joined({}, [allocation("100.00"), balance("200.00")])
    again, completed = joined(rows, [allocation("100.00"), balance("200.00")])
    assert completed == [] and again == rows
