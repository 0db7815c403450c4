"""The plan: every story DOMAIN.md §2 tells, scheduled forward day by day, and the expected ledger it implies."""

import json
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from devtools.generate.model import (
    CADENCE,
    GIVEN,
    NAMES,
    PROCEDURES,
    RECOVERY_WINDOW,
    ClaimPlan,
    FeedFile,
    Line,
    Pair,
    Receivable,
    Spec,
    _Account,
    _Tenant,
    dollars,
    npi,
    payer_at,
)
from devtools.generate.x12 import transaction_segments, write_interchange


class Generator:
    """Builds the plan day by day (every story is scheduled forward, never back) and writes the files."""

    def __init__(self, spec: Spec, out: Path) -> None:
        self.spec = spec
        self.out = out
        self.rng = random.Random(spec.seed)  # noqa: S311 - deterministic synthetic data, not security
        self.tenants = [_Tenant(f"{spec.tenant_prefix}-t{t + 1:02d}") for t in range(spec.tenants)]
        self.accounts: dict[tuple[int, int], list[_Account]] = {}
        serial = 0
        for t, tenant in enumerate(self.tenants):
            for p in range(spec.payers):
                payer_id, payer_name = payer_at(p)
                row = []
                for k in range(spec.providers):
                    serial += 1
                    row.append(
                        _Account(
                            tenant.tenant_id,
                            payer_id,
                            payer_name,
                            npi(serial * 7919 + t),
                            f"56{serial:07d}",
                            f"{NAMES[serial % len(NAMES)]} FAMILY MEDICINE {serial}",
                            lump_only=(p == 0 and k == 0),
                        )
                    )
                self.accounts[t, p] = row
        self.pinned: set[tuple[str, str, int]] = set()
        """(tenant, payer, day) of files a duplicate-payment story spans: never delivered out of order."""
        self.rate = spec.story_rate or max(0.5, spec.claims_per_remit / 20)

    # --- identifiers ---------------------------------------------------------------------------------

    def _icn(self, tenant: _Tenant, day: date) -> str:
        return f"2{day:%y}{day.timetuple().tm_yday:03d}{tenant.next():07d}"

    def _fcn(self, tenant: _Tenant, day: date) -> str:
        return f"FCN{day:%y%m%d}{tenant.next():07d}"

    # --- claims ----------------------------------------------------------------------------------------

    def _claim(self, tenant: _Tenant, day: date) -> ClaimPlan:
        """An ordinary paid claim: 1–3 lines, contractual CO-45, coinsurance/deductible, sequestration."""
        rng = self.rng
        serial = tenant.next()
        lines = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            code, base = rng.choice(PROCEDURES)
            charge = base + rng.randrange(0, 60_00)
            allowed = charge * rng.randrange(55, 85) // 100
            adjustments = [("CO", "45", charge - allowed)]
            patient = allowed * 20 // 100 if rng.random() < 0.8 else 0
            if patient:
                adjustments.append(("PR", "2", patient))
            if rng.random() < 0.1:
                adjustments.append(("PR", "1", (allowed - patient) // 4))
            payable = charge - sum(a[2] for a in adjustments)
            adjustments.append(("CO", "253", payable * 2 // 100))
            lines.append(Line(code, charge, adjustments, day - timedelta(days=rng.randrange(5, 40))))
        name = (NAMES[rng.randrange(len(NAMES))], GIVEN[rng.randrange(len(GIVEN))])
        return ClaimPlan(
            f"ACCT{serial:07d}", f"2{day:%y}{day.timetuple().tm_yday:03d}{serial:07d}", lines, name
        )

    # --- the plan --------------------------------------------------------------------------------------

    def _window(self, pdays: list[int], after: int, until: int) -> list[int]:
        return [d for d in pdays if after < d <= until]

    def _recoveries(self, acct: _Account, rec: Receivable, pdays: list[int], after: int, day0: int) -> None:
        """Schedule full, partial, two-part or no recovery within the window; never more than owed."""
        days = self._window(pdays, after, day0 + RECOVERY_WINDOW)
        mode = self.rng.choice(("full", "full", "full", "partial", "two", "none"))
        if not days or mode == "none":
            return
        if mode == "two" and len(days) >= 2:
            first, second = sorted(self.rng.sample(days, 2))
            part = rec.principal * self.rng.randrange(30, 70) // 100
            acct.at(first).append(("recover", rec, part))
            acct.at(second).append(("recover", rec, rec.principal - part))
            return
        amount = rec.principal if mode != "partial" else rec.principal * self.rng.randrange(30, 70) // 100
        acct.at(self.rng.choice(days)).append(("recover", rec, amount))

    def _letter(self, tenant: _Tenant, acct: _Account, reference: str, cents: int, day: date) -> Receivable:
        rec = Receivable(reference, acct.payer_id, cents)
        tenant.receivables[reference] = rec
        tenant.letters.append(
            {
                "kind": "demand_letter",
                "payer_id": acct.payer_id,
                "payee_id": acct.npi,
                "fcn": reference,
                "amount": rec,
                "letter_date": day.isoformat(),
            }
        )
        return rec

    def _start(
        self, tenant: _Tenant, acct: _Account, pdays: list[int], d: int, claims: list[ClaimPlan]
    ) -> None:
        """Start one story on payment day ``d`` (its first claim, if any, is paid today)."""
        rng, when = self.rng, self.spec.start + timedelta(days=d)
        kind = rng.choices(
            ("deferred", "deferral_letter", "letter", "duplicate", "refund", "forwarding"),
            (30, 15, 20, 15, 10, 10),
        )[0]
        later = self._window(pdays, d, d + 14)
        if kind == "deferred" and later:
            original = self._claim(tenant, when)
            claims.append(original)
            d1 = rng.choice(later)
            line = original.lines[0]
            over = max(1, line.paid * rng.randrange(20, 60) // 100)
            correction = self._claim(tenant, when)
            correction.pcn, correction.patient, correction.original_icn = (
                original.pcn,
                original.patient,
                original.icn,
            )
            correction.lines = [Line(x.code, x.charge, list(x.adjustments), x.day) for x in original.lines]
            correction.lines[0].adjustments[0] = ("CO", "45", line.adjustments[0][2] + over)
            rec = Receivable(original.icn, acct.payer_id, over)
            tenant.receivables[rec.reference] = rec
            padded = f"{original.icn:<19}{original.pcn}" if rng.random() < 0.5 else original.icn
            acct.at(d1).append(("claims", [original.negated(), correction]))
            acct.at(d1).append(("pair", Pair("WO", padded, -over, "deferral")))
            self._recoveries(acct, rec, pdays, d1, d1)
        elif kind == "duplicate" and later:
            original = self._claim(tenant, when)
            claims.append(original)
            twin = ClaimPlan(original.pcn, original.icn, original.lines, original.patient)
            twin_day = rng.choice(later)
            self.pinned |= {(tenant.tenant_id, acct.payer_id, d), (tenant.tenant_id, acct.payer_id, twin_day)}
            acct.at(twin_day).append(("claims", [twin]))
            rec = Receivable(original.icn, acct.payer_id, original.paid)
            tenant.receivables[rec.reference] = rec
            self._recoveries(acct, rec, pdays, twin_day, d)
        elif kind == "deferral_letter":
            rec = self._letter(tenant, acct, self._fcn(tenant, when), rng.randrange(40_00, 900_00), when)
            acct.at(d).append(("pair", Pair("WO", rec.reference, -rec.principal, "deferral")))
            self._recoveries(acct, rec, pdays, d, d)
        elif kind in ("letter", "refund", "forwarding"):
            letter_day = max(0, d - rng.randrange(0, 6))
            letter_date = self.spec.start + timedelta(days=letter_day)
            window = self._window(pdays, d, letter_day + RECOVERY_WINDOW)
            if kind != "letter" and not window:
                return
            rec = self._letter(
                tenant, acct, self._fcn(tenant, letter_date), rng.randrange(40_00, 900_00), letter_date
            )
            if kind == "letter":
                self._recoveries(acct, rec, pdays, d, letter_day)
            elif kind == "refund":
                acct.at(rng.choice(window)).append(("refund", rec))
            else:
                acct.at(rng.choice(window)).append(("oversized", rec))

    def _lump_round(self, tenant: _Tenant, acct: _Account, pdays: list[int], d: int, last: bool) -> None:
        """Letters over a few days, then lump recoupments (no reference) that settle them oldest first."""
        rng = self.rng
        recs = []
        for _ in range(rng.randrange(2, 5)):
            when = self.spec.start + timedelta(days=d + rng.randrange(0, 5))
            rec = self._letter(tenant, acct, self._fcn(tenant, when), rng.randrange(60_00, 700_00), when)
            recs.append(rec)
            tenant.lumps.setdefault(acct.npi + acct.payer_id, []).append((when, rec.reference, 0))
        days = self._window(pdays, d + 5, d + RECOVERY_WINDOW)
        if not days:
            return
        total = sum(r.principal for r in recs)
        if last:
            total = total * rng.randrange(60, 101) // 100
        chosen = sorted(rng.sample(days, min(len(days), rng.randrange(1, 4))))
        for i, day in enumerate(chosen):
            amount = total if i == len(chosen) - 1 else total * rng.randrange(20, 45) // 100
            total -= amount
            acct.at(day).append(("lump", amount))

    def _due(
        self,
        tenant: _Tenant,
        acct: _Account,
        when: date,
        item: tuple[Any, ...],
        claims: list[ClaimPlan],
        pairs: list[Pair],
        oversized: list[Receivable],
    ) -> None:
        """Put one scheduled step of a story into today's transaction, booking what it does to the plan."""
        rng = self.rng
        kind = item[0]
        if kind == "claims":
            claims.extend(item[1])
        elif kind == "pair":
            pairs.append(item[1])
        elif kind == "recover":
            rec, amount = item[1], item[2]
            rec.recovered += amount
            ref = (
                rec.reference
                if rng.random() < 0.7
                else f"{rec.reference:<19}{'ACCT' + str(rng.randrange(10**6))}"
            )
            pairs.append(Pair("WO", ref, amount, "allocated"))
        elif kind == "refund":
            rec = item[1]
            rec.recovered = rec.refunded = rec.principal
            pairs += [
                Pair("WO", rec.reference, rec.principal, "refund_acknowledged"),
                Pair("72", rec.reference, -rec.principal, "refund_acknowledged"),
            ]
        elif kind == "lump":
            pairs.append(Pair("WO", None, item[1], "allocated"))
            tenant.lumps.setdefault(acct.npi + acct.payer_id, []).append((when, "", item[1]))
        elif kind == "oversized":
            oversized.append(item[1])
        elif kind == "fb_apply":
            pairs.append(Pair("FB", item[1], item[2], "forwarding_balance"))
            tenant.forwarding[item[1]][1] += item[2]

    def _incidental(self, tenant: _Tenant, when: date) -> list[Pair]:
        """Pairs no story needs: interest to the provider, a recovery of an unknown FCN, a WU."""
        rng, pairs = self.rng, []
        if rng.random() < 0.25:
            pairs.append(Pair("L6", None, -rng.randrange(50, 900), "non_offset"))
        if rng.random() < 0.05:
            pairs.append(Pair("WO", self._fcn(tenant, when), rng.randrange(20_00, 200_00), "unmatched"))
        if rng.random() < 0.03:
            pairs.append(Pair("WU", None, rng.randrange(10_00, 90_00), "unmatched"))
        return pairs

    def _transaction(self, tenant: _Tenant, acct: _Account, pdays: list[int], d: int, st02: int) -> list[str]:
        """Build one payee's transaction for payment day ``d``: ordinary claims, stories due, balancing FB."""
        rng, when = self.rng, self.spec.start + timedelta(days=d)
        claims = [self._claim(tenant, when) for _ in range(self.spec.claims_per_remit)]
        if acct.lump_only:
            if d >= acct.next_round:
                acct.next_round = d + 30
                self._lump_round(tenant, acct, pdays, d, d + 30 > self.spec.days)
        else:
            starts = int(self.rate) + (1 if rng.random() < self.rate - int(self.rate) else 0)
            for _ in range(starts):
                self._start(tenant, acct, pdays, d, claims)
        pairs: list[Pair] = []
        oversized: list[Receivable] = []
        for item in acct.agenda.pop(d, []):
            self._due(tenant, acct, when, item, claims, pairs, oversized)
        pairs += self._incidental(tenant, when)
        paid = sum(c.paid for c in claims)
        for rec in oversized:
            rec.principal = max(paid - sum(p.cents for p in pairs), 0) + rng.randrange(40_00, 400_00)
            rec.recovered = rec.principal
            pairs.append(Pair("WO", rec.reference, rec.principal, "allocated"))
        trace = f"EFT{when:%y%m%d}{tenant.next():07d}"
        total = paid - sum(p.cents for p in pairs)
        if total < 0:
            pairs.append(Pair("FB", trace, total, "forwarding_balance"))
            tenant.forwarding[trace] = [-total, 0]
            following = [x for x in pdays if x > d]
            if following:
                acct.at(following[0]).append(("fb_apply", trace, -total))
            total = 0
        for pair in pairs:
            tenant.buckets[pair.bucket] += 1
            if pair.bucket == "unmatched":
                tenant.unmatched += pair.cents
        tenant.claims += len(claims)
        tenant.remittances += 1
        return transaction_segments(acct, claims, pairs, trace, when, total, f"{st02:04d}")

    def plan_and_write(self) -> list[FeedFile]:
        """Walk the days, write each file as soon as its last payee is built, then letters and expected."""
        spec = self.spec
        for tenant in self.tenants:
            (self.out / tenant.tenant_id / "835").mkdir(parents=True, exist_ok=True)
        dated: list[tuple[bool, FeedFile]] = []
        for d in range(spec.days):
            for t, tenant in enumerate(self.tenants):
                for p in range(spec.payers):
                    if (d + p) % CADENCE:
                        continue
                    pdays = [x for x in range(spec.days) if (x + p) % CADENCE == 0]
                    txns = [
                        self._transaction(tenant, acct, pdays, d, k + 1)
                        for k, acct in enumerate(self.accounts[t, p])
                    ]
                    when = spec.start + timedelta(days=d)
                    isa13 = f"{(t + 1) * 10_000_000 + (p + 1) * 100_000 + d:09d}"
                    acct = self.accounts[t, p][0]
                    rel = f"{tenant.tenant_id}/835/{when:%Y-%m-%d}_{acct.payer_id}_{isa13}.835"
                    with (self.out / rel).open("w", encoding="ascii", newline="") as handle:
                        write_interchange(handle, acct.payer_id, isa13, when, [txns])
                    pinned = (tenant.tenant_id, acct.payer_id, d) in self.pinned
                    dated.append((pinned, FeedFile(tenant.tenant_id, "835", rel)))
        feed = [FeedFile(t.tenant_id, "letters", f"{t.tenant_id}/letters.json") for t in self.tenants]
        feed += self._deliver_order(dated)
        for tenant in self.tenants:
            letters = [{**x, "amount": dollars(x["amount"].principal)} for x in tenant.letters]
            (self.out / tenant.tenant_id / "letters.json").write_text(json.dumps(letters, indent=1) + "\n")
        (self.out / "manifest.json").write_text(
            json.dumps({"spec": spec.as_json(), "feed": [f.__dict__ for f in feed]}, indent=1) + "\n"
        )
        (self.out / "expected.json").write_text(json.dumps(self.expected(), indent=1, sort_keys=True) + "\n")
        return feed

    def _deliver_order(self, files: list[tuple[bool, FeedFile]]) -> list[FeedFile]:
        """Date order, then ~10 % of files swapped with one up to 3 places later (out of order) and ~5 %
        delivered twice (same bytes, another name).

        Files of a duplicate-payment story are never swapped: detection compares a claim only with
        *earlier-dated* claims it has already seen, so a duplicate delivered before its original is missed
        by both (reported as a finding; the plan keeps to what the services handle).
        """
        order = [f for _, f in files]
        pinned = {id(f) for p, f in files if p}
        for i in range(len(order) - 1):
            if self.rng.random() < 0.1:
                j = min(len(order) - 1, i + self.rng.randrange(1, 4))
                if id(order[i]) not in pinned and id(order[j]) not in pinned:
                    order[i], order[j] = order[j], order[i]
        out: list[FeedFile] = []
        for f in order:
            out.append(f)
            if self.rng.random() < 0.05:
                copy = f.path.replace(".835", ".resent.835")
                (self.out / copy).write_bytes((self.out / f.path).read_bytes())
                out.append(FeedFile(f.tenant, "835", copy))
        return out

    def expected(self) -> dict[str, Any]:
        """The ledger the plan implies, tenant by tenant (lumps water-filled oldest first)."""
        tenants: dict[str, Any] = {}
        for tenant in self.tenants:
            for events in tenant.lumps.values():
                letters = sorted((when, ref) for when, ref, cents in events if ref)
                left = sum(cents for _, ref, cents in events if not ref)
                for _, ref in letters:
                    rec = tenant.receivables[ref]
                    take = min(left, rec.principal - rec.recovered)
                    rec.recovered += take
                    left -= take
            tenants[tenant.tenant_id] = {
                "receivables": {
                    ref: {
                        "payer_id": r.payer_id,
                        "principal": dollars(r.principal),
                        "principal_recovered": dollars(r.recovered),
                        "refunded": dollars(r.refunded),
                        "interest_accrued": "0.00",
                        "status": r.status,
                    }
                    for ref, r in sorted(tenant.receivables.items())
                },
                "forwarding_balances": {
                    ref: {"opened": dollars(o), "applied": dollars(a)}
                    for ref, (o, a) in sorted(tenant.forwarding.items())
                },
                "plb_pairs_by_bucket": dict(sorted(tenant.buckets.items())),
                "unmatched_total": dollars(tenant.unmatched),
                "claim_payments": tenant.claims,
                "remittances": tenant.remittances,
            }
        return {
            "spec": self.spec.as_json(),
            "today": self.spec.start.isoformat(),
            "interest": "none by construction: recoveries fall within 28 days of determination and "
            "OFFSETSTREAM_TODAY is pinned to the first day of the feed",
            "tenants": tenants,
        }
