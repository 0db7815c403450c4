"""Read-only staff commands over the interest schema (wired by the CLI: ``offsetstream receivable FCN``)."""

from collections.abc import Mapping
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from typing import Any

from contracts.money import ZERO
from policies import config as policy_config
from policies import facts
from services.interest import domain
from services.interest.store import InterestStore
from shared import clock, db
from shared.settings import Settings


async def receivable_timeline(settings: Settings, tenant: str, reference: str) -> dict[str, Any]:
    """Everything staff ask about a receivable's dates and interest, for every payer using this reference.

    Returns ``{"tenant", "reference", "as_of", "receivables": [...]}``; each receivable has its policy and why
    it applied (``policy_reason``: configured / table / default, ``policy_source``: which entry;
    ``policy_recorded``: False when interest has recorded no reason yet and this command resolved it with its
    own configuration), principal figures, ``timeline`` (label, date, passed), net ``interest`` per period,
    ``alerts`` and ``ers``
    (its extended repayment schedule with each installment's status and the plan's standing, or None).
    """
    as_of = clock.today(settings)
    store = InterestStore()
    found = []
    async with db.staff_connection(settings, tenant) as conn:
        for row in await store.receivables_by_reference(conn, tenant, reference):
            rid = row.receivable_id
            policy = applied_policy(settings, asdict(row))
            periods = await store.interest_by_period(conn, tenant, rid)
            plan = await store.repayment_plan(conn, tenant, rid)
            ers = None
            if plan is not None:
                history = domain.history_from_changes(
                    row.principal, await store.changes(conn, tenant, rid), row.recovery_schedule
                )
                ers = _ers_view(plan, history, as_of)
            found.append(
                {
                    "receivable_id": str(rid),
                    "payer_id": row.payer_id,
                    **policy,
                    "status": row.status,
                    "determination_date": row.determination_date,
                    "principal": row.principal,
                    "principal_recovered": row.principal_recovered,
                    "outstanding_principal": row.principal - row.principal_recovered,
                    "accrued_through": row.accrued_through,
                    "next_due": row.next_due,
                    "timeline": [
                        {"label": label, "date": day, "passed": day <= as_of}
                        for label, day in await store.stored_timeline(conn, tenant, rid)
                    ],
                    "interest": [
                        {
                            "period": p.period_number,
                            "period_start": p.period_start,
                            "period_end": p.period_end,
                            "due": p.due_date,
                            "basis": p.principal_basis,
                            "rate": p.annual_rate,
                            "amount": p.amount,
                            "postings": p.postings,
                        }
                        for p in periods
                    ],
                    "interest_total": sum((p.amount for p in periods), ZERO),
                    "ers": ers,
                    "alerts": [
                        {
                            "kind": a.kind,
                            "rules": list(a.rules),
                            "observed_on": a.observed_on,
                            "amount": a.amount,
                            "detail": a.detail,
                        }
                        for a in await store.alerts_of(conn, tenant, rid)
                    ],
                }
            )
    return {"tenant": tenant, "reference": reference, "as_of": as_of, "receivables": found}


def applied_policy(settings: Settings, row: Mapping[str, Any]) -> dict[str, Any]:
    """The policy interest applied to a receivable row and why, as the stage recorded it; a row with no reason
    recorded (interest has not recomputed it yet) is resolved now, with this command's configuration, and says
    so."""
    if row.get("policy_applied") and row.get("policy_reason"):
        return {
            "policy": row["policy_applied"],
            "policy_reason": row["policy_reason"],
            "policy_source": row["policy_source"],
            "policy_recorded": True,
        }
    why = policy_config.PolicyConfig.from_settings(settings).resolution(
        str(row["tenant_id"]), str(row["payer_id"]), settings
    )
    return {
        "policy": why.policy,
        "policy_reason": why.reason,
        "policy_source": why.source,
        "policy_recorded": False,
    }


def policy_line(entry: Mapping[str, Any]) -> str:
    """``Policy medicare (table: Medicare contractor table: 01312 Noridian JE Part B (Nevada))``."""
    note = (
        ""
        if entry.get("policy_recorded", True)
        else "; not recorded by interest yet, resolved by this command"
    )
    return f"Policy {entry['policy']} ({entry['policy_reason']}: {entry['policy_source']}{note})"


def _ers_view(plan: facts.ErsPlan, history: facts.History, as_of: date) -> dict[str, Any]:
    """An extended repayment schedule as staff read it: its standing as of today and each installment."""
    payments = [m for m in history.movements if m.total > 0]
    standing, since = domain.ers_standing(plan, payments, as_of)
    return {
        "granted_on": plan.granted_on,
        "standing": standing,
        "default_since": since,
        "installments": [
            {"due": s.due, "amount": s.amount, "paid": s.paid, "status": s.status}
            for s in facts.ers_installments(plan, payments, as_of)
        ],
    }


def _cell(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:.2f}" if value.as_tuple().exponent == -2 else str(value)
    return "" if value is None else str(value)


def render_timeline(view: dict[str, Any]) -> str:
    """Plain text for the terminal: one block per receivable, dates marked done (✓) or upcoming."""
    if not view["receivables"]:
        return f"no receivable with reference {view['reference']} for tenant {view['tenant']}"
    lines: list[str] = []
    for r in view["receivables"]:
        lines += [
            f"Receivable {view['reference']} (payer {r['payer_id']}, policy {r['policy']}, {r['status']})",
            f"  {policy_line(r)}",
            f"  principal {_cell(r['principal'])}, recovered {_cell(r['principal_recovered'])}, "
            f"outstanding {_cell(r['outstanding_principal'])}; interest {_cell(r['interest_total'])} "
            f"accrued through {_cell(r['accrued_through'])}, next due {_cell(r['next_due']) or '-'}",
            f"  Timeline (as of {_cell(view['as_of'])}):",
        ]
        lines += [
            f"    {'✓' if t['passed'] else ' '} {_cell(t['date'])}  {t['label'].replace('_', ' ')}"
            for t in r["timeline"]
        ]
        if r["interest"]:
            lines.append("  Interest:")
            lines += [
                f"    period {p['period']:>3}  {_cell(p['period_start'])}..{_cell(p['period_end'])}  due "
                f"{_cell(p['due'])}  basis {_cell(p['basis']):>10}  rate {_cell(p['rate'])}  "
                f"{_cell(p['amount']):>8}" + (f"  ({p['postings']} postings)" if p["postings"] > 1 else "")
                for p in r["interest"]
            ]
        if r["ers"]:
            lines += _render_ers(r["ers"])
        if r["alerts"]:
            lines.append("  Alerts:")
            lines += [f"    {_cell(a['observed_on'])}  {a['kind']}: {a['detail']}" for a in r["alerts"]]
    return "\n".join(lines)


def _render_ers(ers: dict[str, Any]) -> list[str]:
    standing = {"in_default": f"in default since {_cell(ers['default_since'])}"}.get(
        ers["standing"], ers["standing"]
    )
    installments = ers["installments"]
    paid = sum(1 for i in installments if i["status"] == "paid")
    missed = sum(1 for i in installments if i["status"] == "missed")
    lines = [
        f"  Extended repayment schedule granted {_cell(ers['granted_on'])}: {len(installments)} installments, "
        f"{paid} paid, {missed} missed; {standing}"
    ]
    lines += [
        f"    {_cell(i['due'])}  {_cell(i['amount']):>10}  paid {_cell(i['paid']):>10}  {i['status']}"
        for i in installments
    ]
    return lines
