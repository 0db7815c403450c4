"""No metric label of any stage names a patient, a member or a patient account (invariant 5: no PHI leaks).

Story: run the five services on the sample 835 feed and scrape every ``/metrics`` endpoint while the files flow
and again once the pipeline has settled. Every label *name* must be one we chose to export (bounded by design);
every label *value* is checked against the PHI actually present in the sample files — patient and insured names
and member ids (``NM1*QC`` / ``NM1*IL``) and patient control numbers (``CLP01``) — read from the files here, so
new sample files extend the check without editing it.
"""

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cli.local_infra import Stack
from cli.runner import Pipeline
from shared.settings import REPO_ROOT, SERVICES

pytestmark = pytest.mark.integration

EXAMPLES = REPO_ROOT / "examples" / "835"

ALLOWED_LABELS = {
    # ours (shared/telemetry.py, services/*/metrics.py)
    "service", "topic", "partition", "outcome", "reason", "feed", "kind", "rule", "bucket", "part", "change",
    "policy", "direction", "channel",
    # histogram buckets / summary quantiles
    "le", "quantile",
    # faust's prometheus sensor
    "stream", "table", "operation", "metric", "status_code",
    # prometheus_client's process/platform/gc collectors
    "implementation", "major", "minor", "patchlevel", "version", "generation",
}  # fmt: skip
"""Label names a scrape may carry: each has a small, fixed set of values that are never document data."""

SHORT_TOKEN = 5
"""PHI values shorter than this (first names such as LEE) are matched as whole words, longer ones anywhere."""


def phi_in_samples(folder: Path) -> set[str]:
    """Names, member ids and patient control numbers found in the sample 835 files."""
    found: set[str] = set()
    for path in sorted(folder.glob("*.835")):
        text = path.read_text(encoding="ascii")
        terminator = text[105] if len(text) > 105 else "~"
        element = text[3]
        for segment in text.split(terminator):
            fields = segment.strip().split(element)
            if fields[0] == "NM1" and len(fields) > 1 and fields[1] in {"QC", "IL"}:
                found.update(f for i, f in enumerate(fields) if i in {3, 4, 5, 9} and i < len(fields))
            elif fields[0] == "CLP" and len(fields) > 1:
                found.add(fields[1])
    return {value.strip() for value in found if value.strip()}


def leaks(value: str, phi: set[str]) -> set[str]:
    """The PHI values a label value contains."""
    lowered = value.lower()
    words = set(re.split(r"[^a-z0-9]+", lowered))
    return {p for p in phi if (p.lower() in lowered if len(p) >= SHORT_TOKEN else p.lower() in words)}


async def scrape(session: aiohttp.ClientSession, port: int) -> str:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        return await response.text()


def problems(service: str, text: str, phi: set[str]) -> list[str]:
    """Label names outside the allow-list and label values that contain PHI, in one scrape."""
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for name, value in sample.labels.items():
                if name not in ALLOWED_LABELS:
                    found.append(f"{service}: {sample.name} has label {name!r}")
                if leaked := leaks(value, phi):
                    found.append(f"{service}: {sample.name}{{{name}=...}} contains PHI {sorted(leaked)}")
    return found


def test_phi_is_read_from_the_sample_files() -> None:
    phi = phi_in_samples(EXAMPLES)
    assert {"RIVERA", "DANA", "1EG4TE5MK73", "ACCT10001"} <= phi
    assert leaks("remit.claim-payments.v1", phi) == leaks("remit.claim-payments.v2", phi) == set()
    assert leaks("patient RIVERA", phi) == {"RIVERA"}


async def test_metric_labels_are_bounded_and_phi_free(stack: Stack, tenant: str) -> None:
    phi = phi_in_samples(EXAMPLES)
    found: list[str] = []
    async with aiohttp.ClientSession() as session, Pipeline(stack) as pipeline:
        ports = {service: stack.web_ports[f"{service}-0"] for service in SERVICES}
        assert await pipeline.ingest([EXAMPLES], tenant) == 4
        settled = asyncio.create_task(pipeline.settle(timeout=60))
        scrapes = 0
        while not settled.done():
            # Step: scrape while the feed flows (every stage that answers already).
            for service, port in ports.items():
                try:
                    text = await scrape(session, port)
                except aiohttp.ClientConnectionError:
                    continue
                found += problems(service, text, phi)
                scrapes += 1
            await asyncio.sleep(1.0)
        await settled
        # Step: and once more after the last message, when every series exists.
        for service, port in ports.items():
            text = await scrape(session, port)
            assert "remit_messages_processed_total" in text, service
            found += problems(service, text, phi)
    assert scrapes > 0
    assert not found, "\n".join(sorted(set(found)))
