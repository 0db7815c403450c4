"""``make bench-serde``: what one envelope costs to decode and encode, with pydantic (the contract) and without.

Messages: the envelopes intake really publishes for one generated transaction (``RemittanceReceived``, 60
``ClaimPaymentReceived`` with 1–3 service lines and their CAS adjustments each, ``ProviderAdjustmentReceived``),
built by the parser and ``services.intake.domain.remittance_events`` as in the service, plus the example envelope
of every other topic (``contracts.examples.example_envelope``).

Per message, in µs of CPU (``time.process_time``; best of ``REPEATS`` rounds of at least ``ROUND_SECONDS``):

decode (the consumer's hot path: every stage parses every input)
  ``topic.parse``            what the stages do: ``Envelope[P].model_validate_json(raw, extra="ignore")``, the
                             generic class looked up on each call
  ``model.validate_json``    the same with ``Envelope[P]`` resolved once
  ``model.validate_json (strict extra)``  without the per-call ``extra="ignore"``
  ``orjson.loads + validate`` orjson builds the dict, pydantic validates it (``model_validate``)
  ``json.loads`` / ``orjson.loads`` / ``msgspec.decode``  only the dict, no contract: the floor of untyped JSON
encode (every output)
  ``build``                  ``shared.envelopes.build``: wrapping a payload in its envelope (validated)
  ``to_bytes``               what the stages do: ``model_dump_json().encode()``
  ``dump(json) + orjson`` / ``+ msgspec`` / ``+ json``  ``model_dump(mode="json")`` then another encoder

orjson and msgspec are not dependencies of the project: the bench installs them into a throwaway venv
(``.local/bench/serde-venv``, built on first use, reading the project's own venv through a ``.pth`` file) and
re-runs itself there; without them (no registry) it measures the pydantic and ``json`` rows only.
"""

import gc
import hashlib
import importlib
import io
import json
import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from contracts import topics
from contracts.envelope import Envelope
from contracts.examples import envelope_model, example_envelope
from contracts.money import Money
from devtools.generate import iter_transactions, write_interchange
from services.intake.domain import remittance_events
from services.intake.feeds import ParsedRemittance
from services.intake.x12 import X12Parser
from shared import claims, envelopes
from shared.settings import REPO_ROOT

ROOT = REPO_ROOT / ".local" / "bench"
VENV = ROOT / "serde-venv"
EXTRAS = ("orjson", "msgspec")
REPEATS = 5
ROUND_SECONDS = 0.1


def optional(name: str) -> Any:
    """An optional module, or None when it is not installed here."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def intake_messages(claims: int = 60) -> list[tuple[topics.Topic[Any], Envelope[Any]]]:
    """Every envelope intake publishes for one generated transaction of ``claims`` claims (plus reversals)."""
    text = io.StringIO()
    segs = [s for s, _ in iter_transactions(1, claims, seed=7)]
    write_interchange(text, "01312", "000000777", date(2026, 7, 6), [segs])
    content = text.getvalue().encode()
    sha = hashlib.sha256(content).hexdigest()
    found: list[tuple[topics.Topic[Any], Envelope[Any]]] = []
    for result in X12Parser().parse(content, file_name="serde.835", file_sha256=sha, tenant_id="bench"):
        if isinstance(result, ParsedRemittance):
            found.extend(remittance_events("bench", result))
    return found


def per_call(fn: Callable[[], object], calls: int) -> float:
    """µs of CPU per call of ``fn`` (which does ``calls`` messages), best of ``REPEATS`` rounds."""
    loops = 1
    while True:  # calibrate: a round of at least ROUND_SECONDS
        t0 = time.process_time()
        for _ in range(loops):
            fn()
        if time.process_time() - t0 >= ROUND_SECONDS:
            break
        loops *= 2
    best = float("inf")
    gc.collect()
    for _ in range(REPEATS):
        t0 = time.process_time()
        for _ in range(loops):
            fn()
        best = min(best, time.process_time() - t0)
    return best / loops / calls * 1e6


def cases(group: list[tuple[topics.Topic[Any], Envelope[Any]]]) -> dict[str, Callable[[], object]]:
    """name → a function that decodes or encodes every message of ``group`` once (one topic per group)."""
    topic = group[0][0]
    model = envelope_model(topic)
    envs = [env for _, env in group]
    raws = [env.to_bytes() for env in envs]
    payloads = [(env.payload, env.event_id, env.event_type, env.causation_id) for env in envs]
    tenant, account = envs[0].tenant_id, envs[0].account_key
    orjson, msgspec = optional("orjson"), optional("msgspec")
    found: dict[str, Callable[[], object]] = {
        "decode  topic.parse (stages today)": lambda: [topic.parse(raw) for raw in raws],
        "decode  model.validate_json": lambda: [
            model.model_validate_json(raw, extra="ignore") for raw in raws
        ],
        "decode  model.validate_json (strict extra)": lambda: [
            model.model_validate_json(raw) for raw in raws
        ],
    }
    if orjson is not None:
        found["decode  orjson.loads + validate"] = lambda: [
            model.model_validate(orjson.loads(raw), extra="ignore") for raw in raws
        ]
    found["decode  json.loads (dict only)"] = lambda: [json.loads(raw) for raw in raws]
    if orjson is not None:
        found["decode  orjson.loads (dict only)"] = lambda: [orjson.loads(raw) for raw in raws]
    if msgspec is not None:
        decoder = msgspec.json.Decoder()
        found["decode  msgspec.decode (dict only)"] = lambda: [decoder.decode(raw) for raw in raws]
    found["encode  build (envelopes.build)"] = lambda: [
        envelopes.build(p, event_id=i, event_type=t, tenant_id=tenant, account_key=account, causation_id=c)
        for p, i, t, c in payloads
    ]
    found["encode  to_bytes (stages today)"] = lambda: [env.to_bytes() for env in envs]
    if orjson is not None:
        found["encode  dump(json) + orjson.dumps"] = lambda: [
            orjson.dumps(env.model_dump(mode="json")) for env in envs
        ]
    if msgspec is not None:
        encoder = msgspec.json.Encoder()
        found["encode  dump(json) + msgspec.encode"] = lambda: [
            encoder.encode(env.model_dump(mode="json")) for env in envs
        ]
    found["encode  dump(json) + json.dumps"] = lambda: [
        json.dumps(env.model_dump(mode="json"), separators=(",", ":")).encode() for env in envs
    ]
    return found


class _Amounts(BaseModel):
    values: list[Money]


class _Decimals(BaseModel):
    values: list[Decimal]


def money_cost() -> None:
    """µs per amount of the contract's ``Money`` (Python validator and serializer) against a plain ``Decimal``."""
    raw = json.dumps({"values": [f"{i}.{i % 100:02d}" for i in range(1000)]}).encode()
    print("\nMoney vs Decimal, 1 000 amounts in one model:")
    for model in (_Amounts, _Decimals):
        parsed = model.model_validate_json(raw)
        decode = per_call(lambda m=model: m.model_validate_json(raw), 1000)  # type: ignore[misc]
        encode = per_call(parsed.model_dump_json, 1000)
        print(f"  {model.__name__:<10} validate {decode:.2f} µs, dump {encode:.2f} µs per amount", flush=True)


def measure() -> None:
    groups: dict[str, list[tuple[topics.Topic[Any], Envelope[Any]]]] = {}
    for topic, env in intake_messages():
        groups.setdefault(f"{env.event_type} (intake, real)", []).append((topic, env))
        if topic is topics.CLAIM_PAYMENTS:  # its claims as the v1 messages detection unbundles them into
            for claim in claims.claims_of(env):
                groups.setdefault("ClaimPaymentReceived (v1, unbundled)", []).append(
                    (topics.CLAIM_PAYMENTS_V1, claim)
                )
    for topic in topics.TOPICS:
        if topic in (
            topics.CLAIM_PAYMENTS,
            topics.CLAIM_PAYMENTS_V1,
            topics.REMITTANCES,
            topics.PROVIDER_ADJUSTMENTS,
        ):
            continue
        env = example_envelope(topic)
        groups[f"{env.event_type} (example)"] = [(topic, env)]
    versions = {name: getattr(optional(name), "__version__", None) for name in ("pydantic", *EXTRAS)}
    one, five, fifteen = os.getloadavg()
    print(
        f"serde bench: µs of CPU per message, best of {REPEATS}; load average {one:.2f} / {five:.2f} / {fifteen:.2f}; "
        + ", ".join(f"{k} {v or 'not installed'}" for k, v in versions.items())
    )
    for label, group in groups.items():
        sizes = [len(env.to_bytes()) for _, env in group]
        print(f"\n{label}: {len(group)} message(s), {sum(sizes) / len(sizes):,.0f} bytes on average")
        for name, fn in cases(group).items():
            print(f"  {name:<44} {per_call(fn, len(group)):>8.1f} µs", flush=True)
    money_cost()


def ensure_venv() -> bool:
    """Build the throwaway venv with orjson and msgspec (once); False when they cannot be installed."""
    python = VENV / "bin" / "python"
    if python.exists() and (VENV / ".ready").exists():
        return True
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # the project and its own venv's packages, after the throwaway venv's own
    own = sysconfig.get_paths()["purelib"]
    (VENV / site.removeprefix(str(VENV) + "/") / "offsetstream-bench.pth").write_text(f"{own}\n{REPO_ROOT}\n")
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", *EXTRAS], check=False)
    if done.returncode != 0:
        return False
    (VENV / ".ready").touch()
    return True


def main() -> int:
    if all(optional(name) is not None for name in EXTRAS) or os.environ.get("BENCH_SERDE_INNER"):
        measure()
        return 0
    if not ensure_venv():
        print("orjson/msgspec could not be installed: pydantic and json rows only", file=sys.stderr)
        measure()
        return 0
    env = {**os.environ, "BENCH_SERDE_INNER": "1"}
    python = str(VENV / "bin" / "python")
    return subprocess.run(
        [python, "-m", "devtools.bench.serde_bench"], cwd=REPO_ROOT, env=env, check=False
    ).returncode


if __name__ == "__main__":
    sys.exit(main())
