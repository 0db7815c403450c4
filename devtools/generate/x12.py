"""X12 835 text for a planned remittance: claim loops, transactions, interchanges."""

from datetime import date, timedelta
from typing import TextIO

from devtools.generate.model import MAX_PAIRS, ClaimPlan, Pair, _Account, money


def _seg(*elements: str) -> str:
    items = list(elements)
    while len(items) > 1 and items[-1] == "":
        items.pop()
    return "*".join(items) + "~"


def claim_segments(claim: ClaimPlan) -> list[str]:
    """The 2100 loop with its 2110 service lines (CAS grouped by group code, six triples per segment)."""
    every = [a for line in claim.lines for a in line.adjustments]
    patient = sum(a[2] for a in every if a[0] == "PR")
    segs = [
        _seg(
            "CLP",
            claim.pcn,
            claim.status,
            money(claim.charge),
            money(claim.paid),
            money(patient) if patient else "",
            "MB",
            claim.icn,
            "11",
            "1",
        ),
        _seg(
            "NM1",
            "QC",
            "1",
            claim.patient[0],
            claim.patient[1],
            "",
            "",
            "",
            "MI",
            f"{claim.pcn[-7:]}MB{claim.icn[-3:]}",
        ),
    ]
    if claim.original_icn:
        segs.append(_seg("REF", "F8", claim.original_icn))
    first = min(line.day for line in claim.lines)
    segs.append(_seg("DTM", "050", f"{first + timedelta(days=3):%Y%m%d}"))
    for n, line in enumerate(claim.lines, start=1):
        segs.append(_seg("SVC", f"HC:{line.code}", money(line.charge), money(line.paid), "", "1"))
        segs.append(_seg("DTM", "472", f"{line.day:%Y%m%d}"))
        groups: dict[str, list[tuple[str, int]]] = {}
        for group, reason, cents in line.adjustments:
            groups.setdefault(group, []).append((reason, cents))
        for group, items in groups.items():
            for i in range(0, len(items), 6):
                segs.append(_seg("CAS", group, *(x for r, c in items[i : i + 6] for x in (r, money(c), ""))))
        segs.append(_seg("REF", "6R", f"{claim.pcn}-{n}"))
        contractual = sum(c for g, r, c in line.adjustments if (g, r) == ("CO", "45"))
        segs.append(_seg("AMT", "B6", money(line.charge - contractual)))
    return segs


def transaction_segments(
    acct: _Account, claims: list[ClaimPlan], pairs: list[Pair], trace: str, when: date, total: int, st02: str
) -> list[str]:
    """ST..SE of one payee; BPR is a notification (``H``/``NON``) when nothing is paid."""
    if total:
        bpr = _seg(
            "BPR",
            "I",
            money(total),
            "C",
            "ACH",
            "CCP",
            "01",
            "011000028",
            "DA",
            "000012345",
            "1" + acct.tin,
            "",
            "01",
            "021000021",
            "DA",
            "987654321",
            f"{when:%Y%m%d}",
        )
    else:
        bpr = _seg("BPR", "H", "0", "C", "NON", *[""] * 11, f"{when:%Y%m%d}")
    segs = [
        _seg("ST", "835", st02, "005010X221A1"),
        bpr,
        _seg("TRN", "1", trace, "1" + acct.tin),
        _seg("DTM", "405", f"{when - timedelta(days=2):%Y%m%d}"),
        _seg("N1", "PR", acct.payer_name, "XV", acct.payer_id),
        _seg("N3", "PO BOX 100275"),
        _seg("N4", "COLUMBIA", "SC", "292024275"),
        _seg("PER", "BL", "EDI TECHNICAL SUPPORT", "TE", "8665026315"),
        _seg("N1", "PE", acct.name, "XX", acct.npi),
        _seg("N3", "100 MAIN STREET"),
        _seg("N4", "SPRINGFIELD", "SC", "290011234"),
        _seg("REF", "TJ", acct.tin),
        _seg("LX", "1"),
    ]
    for claim in claims:
        segs += claim_segments(claim)
    for i in range(0, len(pairs), MAX_PAIRS):
        elements = ["PLB", acct.npi, f"{when.year}1231"]
        for pair in pairs[i : i + MAX_PAIRS]:
            elements += [
                pair.code if pair.reference is None else f"{pair.code}:{pair.reference}",
                money(pair.cents),
            ]
        segs.append(_seg(*elements))
    segs.append(_seg("SE", str(len(segs) + 1), st02))
    return segs


def write_interchange(
    out: TextIO, sender: str, isa13: str, when: date, groups: list[list[list[str]]]
) -> None:
    """ISA..IEA with one GS..GE per group of transactions (given as segment lists), one segment a line."""
    isa = "*".join(
        [
            "ISA",
            "00",
            " " * 10,
            "00",
            " " * 10,
            "ZZ",
            f"{sender:<15}",
            "ZZ",
            f"{'PROVSUBMITTER':<15}",
            f"{when:%y%m%d}",
            "0615",
            "^",
            "00501",
            isa13,
            "0",
            "P",
            ":",
        ]
    )
    out.write(isa + "~\n")
    for n, txns in enumerate(groups, start=1):
        gs06 = f"{int(isa13) % 100_000_000 * 10 + n}"
        out.write(
            _seg("GS", "HP", sender, "PROVSUBMITTER", f"{when:%Y%m%d}", "0615", gs06, "X", "005010X221A1")
            + "\n"
        )
        for txn in txns:
            out.write("\n".join(txn) + "\n")
        out.write(_seg("GE", str(len(txns)), gs06) + "\n")
    out.write(_seg("IEA", str(len(groups)), isa13) + "\n")
