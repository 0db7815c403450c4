"""Quick parse-speed measurement: a generated 835 with N claims (10 000 per transaction)."""
import gc, hashlib, sys, time
from decimal import Decimal as D
from tests.unit.x12_builder import Adj, Claim, Plb, PlbPair, Service, Transaction, build_835
from services.intake.x12 import X12Parser
from shared.feeds import ParsedRemittance

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
per_txn = 10_000
txns = []
for t in range(n // per_txn):
    claims = []
    for i in range(per_txn):
        k = t * per_txn + i
        charge = D(100 + k % 400)
        svcs = [Service(charge, [Adj("CO", "45", D("20.50")), Adj("PR", "2", D(k % 30))], date=f"202607{1 + k % 28:02d}")]
        if k % 3 == 0:
            svcs.append(Service(D("75.25"), [Adj("CO", "45", D("10")), Adj("CO", "253", D("1.30"))], procedure=("HC", "85025")))
        claims.append(Claim(f"PCN{k:07d}", svcs, icn=f"22261{k:08d}"))
    txns.append(Transaction(claims, [Plb([PlbPair("WO", "2226183201000", D("-100")), PlbPair("L6", None, D("-2.37"))])],
                            st02=f"{t + 1:04d}", trace=f"EFT{t:09d}"))
text = build_835(*txns).encode()
del txns, claims, svcs
gc.collect()
print(f"{len(text) / 1e6:.1f} MB, {text.count(b'~')} segments")
parser = X12Parser()
import gc
if "nogc" in sys.argv: gc.disable()
best = 1e9
for _ in range(3):
    t0 = time.perf_counter()
    out = None
    out = list(parser.parse(text, file_name="bench.835", file_sha256=hashlib.sha256(text).hexdigest(), tenant_id="t"))
    best = min(best, time.perf_counter() - t0)
claims = sum(len(r.claims) for r in out if isinstance(r, ParsedRemittance))
assert claims == n, out[:2]
print(f"{claims} claims in {best:.3f} s = {claims / best:,.0f} claims/s")
