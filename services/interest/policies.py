"""Built-in payer policy plugins (entry-point group ``offsetstream.payer_policies``)."""

from datetime import date
from decimal import Decimal
from pathlib import Path

from services.interest.domain import RateTable

DATA = Path(__file__).resolve().parent / "data"


class MedicarePolicy:
    """Medicare: interest from day 31 on outstanding principal, rate locked at the determination date,
    recoupment from day 41 (42 CFR 405.378/405.379)."""

    name = "medicare"
    interest_grace_days = 30
    recoupment_start_day = 41
    rebuttal_days = 15

    def __init__(self, rates: RateTable | None = None) -> None:
        self.rates = rates or RateTable.from_csv(DATA / "medicare_interest_rates.csv")

    def annual_rate(self, determination: date) -> Decimal:
        """Rate in force on the determination date, fixed for the life of the debt."""
        return self.rates.rate_on(determination)
