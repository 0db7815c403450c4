"""Read models the console needs beyond the staff views the command line already has (``cli.matching_views``,
``cli.interest_views``, ``cli.main.fetch_files``, which the console calls as they are): the payer scorecard,
the recoupment forecast, a receivable's payee, and intake's rejections.

Every function takes a connection already inside ``db.staff_scope`` (role ``offsetstream_staff``, one
tenant, read-only): row-level security returns that clinic's rows only even if a query forgot its filter.
"""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from contracts.money import ZERO

HORIZONS = (30, 60, 90)
PERIOD_DAYS = 30
CENT = Decimal("0.01")


def _rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r.items()) for r in records]


async def payee_of(conn: asyncpg.Connection, tenant: str, account_key: str) -> str | None:
    """The payee (NPI/TIN) of an account, from the remittances intake posted for it; None for an account known
    only from a letter (staff then type it)."""
    value = await conn.fetchval(
        "SELECT payee_id FROM intake.remittances WHERE tenant_id = $1 AND account_key = $2 LIMIT 1",
        tenant,
        account_key,
    )
    return None if value is None else str(value)


async def policies(conn: asyncpg.Connection, tenant: str) -> dict[str, str]:
    """Reference → payer policy of every receivable (the receivables page filters on it; the CLI's list,
    ``matching_views.receivables``, does not print it)."""
    rows = await conn.fetch("SELECT reference, policy FROM matching.receivables WHERE tenant_id = $1", tenant)
    return {str(r["reference"]): str(r["policy"]) for r in rows}


async def rejections(conn: asyncpg.Connection, tenant: str, limit: int = 200) -> list[dict[str, Any]]:
    """Transactions intake refused, newest file first: reason, error line and location (file, transaction
    index, ST02, claim ordinal). Intake writes these PHI-free (docs/security.md); no file content is read."""
    return _rows(
        await conn.fetch(
            """SELECT f.file_name, f.received_at, r.transaction_index, r.reason, r.message,
                      r.location->>'st02' AS st02, r.location->>'claim_ordinal' AS claim_ordinal
               FROM intake.rejections r
               JOIN intake.files f ON f.tenant_id = r.tenant_id AND f.sha256 = r.file_sha256
               WHERE r.tenant_id = $1 ORDER BY f.received_at DESC, r.transaction_index LIMIT $2""",
            tenant,
            limit,
        )
    )


async def file_rejections(conn: asyncpg.Connection, tenant: str, sha256: str) -> int | None:
    """How many transactions of the tenant's file with this SHA-256 intake rejected when it first read it;
    None when the tenant has no such file."""
    value = await conn.fetchval(
        "SELECT rejected FROM intake.files WHERE tenant_id = $1 AND sha256 = $2", tenant, sha256
    )
    return None if value is None else int(value)


SCORECARD_SQL = """
WITH pairs AS (
    SELECT a.payer_id, date_trunc('month', a.payment_date)::date AS month, a.adjustment_id, a.amount,
           a.unmatched_amount, a.dismissed_amount, a.match_method
    FROM matching.adjustments a
    WHERE a.tenant_id = $1 AND a.amount > 0 AND a.bucket IN ('allocated', 'unmatched', 'staff_dismissed')
), applied AS (
    SELECT l.adjustment_id, sum(l.to_interest + l.to_principal) AS applied,
           bool_or(EXISTS (SELECT 1 FROM detection.evidence e WHERE e.tenant_id = l.tenant_id
                           AND e.receivable_id = l.receivable_id
                           AND e.channel IN ('letter', 'provider_identified'))) AS staff_entered
    FROM matching.allocations l WHERE l.tenant_id = $1 AND l.kind = 'offset' GROUP BY l.adjustment_id
), breaks AS (
    SELECT r.payer_id, date_trunc('month', x.observed_on)::date AS month, count(*) AS rule_breaks
    FROM interest.alerts x JOIN interest.receivables r USING (tenant_id, receivable_id)
    WHERE x.tenant_id = $1 GROUP BY 1, 2
), forwarding AS (
    SELECT m.payer_id, date_trunc('month', f.opened_on)::date AS month,
           sum(f.opened_amount - f.applied_amount) AS open_forwarding
    FROM matching.forwarding_balances f
    JOIN (SELECT DISTINCT tenant_id, account_key, payer_id FROM intake.remittances WHERE tenant_id = $1) m
      ON m.tenant_id = f.tenant_id AND m.account_key = f.account_key
    WHERE f.tenant_id = $1 AND f.opened_on IS NOT NULL GROUP BY 1, 2
), queued AS (
    SELECT facts->>'payer_id' AS payer_id, (facts->>'payment_date')::date AS paid, facts->>'trace_number' AS trace,
           facts->>'reason_code' AS code, facts->>'reference' AS reference, min(created_at) AS at
    FROM notification.notifications WHERE tenant_id = $1 AND kind = 'unmatched_recovery' GROUP BY 1, 2, 3, 4, 5
), resolved AS (
    SELECT facts->>'payer_id' AS payer_id, (facts->>'payment_date')::date AS paid, facts->>'trace_number' AS trace,
           facts->>'reason_code' AS code, facts->>'reference' AS reference, max(created_at) AS at
    FROM notification.notifications WHERE tenant_id = $1 AND kind = 'unmatched_recovery_resolved'
    GROUP BY 1, 2, 3, 4, 5
), explained AS (
    SELECT q.payer_id, date_trunc('month', q.paid)::date AS month,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.at - q.at) / 86400) AS median_days
    FROM queued q JOIN resolved r ON r.payer_id = q.payer_id AND r.paid = q.paid AND r.trace = q.trace
         AND r.code = q.code AND r.reference IS NOT DISTINCT FROM q.reference
    GROUP BY 1, 2
), months AS (
    SELECT p.payer_id, p.month, sum(p.amount) AS withheld,
           sum(COALESCE(ap.applied, 0)) FILTER (WHERE NOT COALESCE(p.match_method = 'rematch' AND ap.staff_entered,
                                                              false)) AS auto,
           sum(COALESCE(ap.applied, 0)) FILTER (WHERE p.match_method = 'rematch' AND ap.staff_entered) AS later,
           sum(p.unmatched_amount) AS unexplained, sum(p.dismissed_amount) AS dismissed
    FROM pairs p LEFT JOIN applied ap USING (adjustment_id) GROUP BY 1, 2
)
SELECT COALESCE(m.payer_id, b.payer_id, f.payer_id) AS payer_id, COALESCE(m.month, b.month, f.month) AS month,
       COALESCE(m.withheld, 0) AS withheld, COALESCE(m.auto, 0) AS explained_automatically,
       COALESCE(m.later, 0) AS explained_by_staff, COALESCE(m.unexplained, 0) AS unexplained,
       COALESCE(m.dismissed, 0) AS dismissed_not_ours,
       COALESCE(b.rule_breaks, 0) AS rule_breaks, COALESCE(f.open_forwarding, 0) AS open_forwarding,
       x.median_days
FROM months m
FULL JOIN breaks b ON b.payer_id = m.payer_id AND b.month = m.month
FULL JOIN forwarding f ON f.payer_id = COALESCE(m.payer_id, b.payer_id) AND f.month = COALESCE(m.month, b.month)
LEFT JOIN explained x ON x.payer_id = COALESCE(m.payer_id, b.payer_id, f.payer_id)
     AND x.month = COALESCE(m.month, b.month, f.month)
ORDER BY 1, 2
"""


def _share(part: Decimal, whole: Decimal) -> Decimal | None:
    return None if whole <= 0 else (part * 100 / whole).quantize(Decimal("0.1"))


async def scorecard(conn: asyncpg.Connection, tenant: str) -> list[dict[str, Any]]:
    """Per payer and month of payment: money withheld (positive recoupment pairs, allocated or waiting: not
    interest paid to the provider, refund acknowledgements, deferrals or forwarding balances carried and
    applied, whose money is counted where it was taken), the share explained by staff (applied later, once a
    receivable a staff member entered, a letter or an identification, appeared: ``rematch`` to a receivable
    with letter evidence), explained automatically (every other application), still unexplained, and dismissed by staff as not
    the clinic's (``not ours``: taken, but owed by no receivable of this clinic); recoupment rule breaks observed that month; forwarding balances
    opened that month and still open; the median days from the work queue hearing of a withheld amount
    (notification ``unmatched_recovery``) to its leaving the queue (``unmatched_recovery_resolved``), in
    wall-clock time: the ledger keeps business dates only, the notifications keep when things happened (None
    when nothing of that month was ever in the queue and resolved)."""
    out = []
    for row in _rows(await conn.fetch(SCORECARD_SQL, tenant)):
        days = row.pop("median_days")
        withheld = row["withheld"]
        out.append(
            {
                **row,
                "month": row["month"].strftime("%Y-%m"),
                "automatic_pct": _share(row["explained_automatically"], withheld),
                "staff_pct": _share(row["explained_by_staff"], withheld),
                "unexplained_pct": _share(row["unexplained"], withheld),
                "dismissed_pct": _share(row["dismissed_not_ours"], withheld),
                "median_days_to_explain": None if days is None else Decimal(str(round(days, 1))),
            }
        )
    return out


@dataclass
class PayerForecast:
    """What one payer is expected to withhold, and interest to come due, within each horizon (days)."""

    payer_id: str
    withholding: dict[int, Decimal] = field(default_factory=lambda: dict.fromkeys(HORIZONS, ZERO))
    interest: dict[int, Decimal] = field(default_factory=lambda: dict.fromkeys(HORIZONS, ZERO))


FORECAST_SQL = """
SELECT r.payer_id, r.paused, r.principal - r.principal_recovered AS principal_open,
       r.principal + r.interest_accrued - r.principal_recovered - r.interest_recovered - r.written_off AS balance,
       t.day AS recoupment_start, i.next_due,
       (SELECT a.annual_rate FROM interest.accruals a WHERE a.tenant_id = i.tenant_id
          AND a.receivable_id = i.receivable_id ORDER BY a.period_number DESC, a.version DESC LIMIT 1) AS rate
FROM matching.receivables r
LEFT JOIN interest.receivables i ON i.tenant_id = r.tenant_id AND i.receivable_id = r.receivable_id
LEFT JOIN interest.timelines t ON t.tenant_id = r.tenant_id AND t.receivable_id = r.receivable_id
     AND t.label = 'recoupment_start'
WHERE r.tenant_id = $1 AND r.merged_into IS NULL
  AND r.principal + r.interest_accrued - r.principal_recovered - r.interest_recovered - r.written_off > 0
"""


def forecast_rows(rows: list[dict[str, Any]], today: date) -> list[PayerForecast]:
    """Pure: the forecast of open receivables as of ``today``.

    Withholding: the open balance of a receivable not paused by an appeal, expected once its recoupment may
    start (today when that day has passed), counted in every horizon that reaches that day. Interest: every
    30-day period coming due within the horizon at the last rate interest applied, on the open principal
    (an estimate: recoveries before then lower it). A receivable whose policy charges no interest adds none."""
    payers: dict[str, PayerForecast] = {}
    for row in rows:
        entry = payers.setdefault(row["payer_id"], PayerForecast(row["payer_id"]))
        start = row["recoupment_start"] or today
        for days in HORIZONS:
            end = today + timedelta(days=days)
            if not row["paused"] and max(start, today) <= end:
                entry.withholding[days] += row["balance"]
            due, rate = row["next_due"], row["rate"]
            if due is None or not rate or row["principal_open"] <= 0:
                continue
            per_period = (row["principal_open"] * rate * PERIOD_DAYS / 360).quantize(CENT)
            while due <= end:
                if due > today:
                    entry.interest[days] += per_period
                due += timedelta(days=PERIOD_DAYS)
    return [payers[p] for p in sorted(payers)]


async def forecast(conn: asyncpg.Connection, tenant: str, today: date) -> list[PayerForecast]:
    """The recoupment forecast of one clinic (see :func:`forecast_rows`)."""
    return forecast_rows(_rows(await conn.fetch(FORECAST_SQL, tenant)), today)
