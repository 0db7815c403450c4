"""The staff console in a real browser (Debian's Chromium driven by Playwright) against the real stack: the five
services and the console as processes on the test broker and database.

Story: clinic A receives the four example files (three receivables, one still open) and a Medicare remittance
withholding 60.00 against an FCN nobody has told us about, so the money waits in the work queue. A biller of
clinic A logs in, identifies the overpayment from the queue; the letter goes to Kafka, detection opens the
receivable, matching applies the waiting 60.00 to it, and the console shows it settled. Clinic B has its own
receivable, which A's biller cannot reach (404), and a form posted without its CSRF token is refused (403). The
forecast and the scorecard show the figures the ledger holds. A second item (35.00 withheld in September under
an FCN that is not the clinic's) is noted, assigned and marked "not ours": matching takes it out of the queue
into the staff-dismissed bucket. Every page is saved under .local/screenshots/.
"""

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from harness import remit

from cli import letters
from cli.local_infra import Stack
from cli.runner import Pipeline
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.integration

EXAMPLES = REPO_ROOT / "examples" / "835"
TODAY = "2026-11-23"
SHOTS = REPO_ROOT / ".local" / "screenshots"
CHROMIUM = Path(os.environ.get("OFFSETSTREAM_CHROMIUM", "/usr/bin/chromium"))
UNKNOWN_FCN = "FCN26110200077"
NOT_OURS_FCN = "FCN26091500099"  # withheld in September under an FCN of another provider: staff dismiss it
UNBALANCED = (
    "2026-08-04_medicare_unbalanced.835"  # its one transaction is rejected: an admin replays the file
)


def _browser_or_skip() -> None:
    """Chromium and Playwright must be there; outside CI their absence skips, in CI (CI=true) it fails."""
    problem = None
    if shutil.which(str(CHROMIUM)) is None:
        problem = (
            f"no Chromium at {CHROMIUM} (infra/bootstrap.sh installs Debian's: apt-get install chromium)"
        )
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (make setup)"
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run in CI: {problem}")
    pytest.skip(f"browser tests skipped: {problem}")


@dataclass
class Console:
    pipeline: Pipeline
    url: str
    clinic_a: str
    clinic_b: str
    password: str
    viewer_password: str
    dsn: str


async def _settle_until(pipeline: Pipeline, ready: Any, timeout: float = 90.0) -> None:  # noqa: ASYNC109
    """Settle the pipeline, then poll until ``ready()`` holds (a staff event crosses several stages)."""
    await pipeline.settle(timeout=timeout)
    for _ in range(int(timeout)):
        if await ready():
            return
        await asyncio.sleep(1)
    raise AssertionError("the ledger did not reach the expected state")


@pytest.fixture(scope="session")
def browser_ready() -> None:
    """Checked before the stack starts, so a skip costs nothing."""
    _browser_or_skip()


@pytest.fixture(scope="module")
async def console(
    browser_ready: None, stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Console]:
    clinic_a, clinic_b = "console-clinic-a", "console-clinic-b"
    folder = tmp_path_factory.mktemp("console-feed")
    withheld = folder / "2026-11-02_medicare_unknown_fcn.835"
    withheld.write_bytes(remit("EFT261102077", "20261102", ("WO", UNKNOWN_FCN, "60.00")))
    not_ours = folder / "2026-09-15_medicare_not_ours.835"
    not_ours.write_bytes(remit("EFT260915099", "20260915", ("WO", NOT_OURS_FCN, "35.00")))
    unbalanced = folder / UNBALANCED
    deferred = (EXAMPLES / "2026-08-03_medicare_deferred.835").read_bytes()
    unbalanced.write_bytes(deferred.replace(b"BPR*I*584.57", b"BPR*I*584.58"))  # rejected: BPR02 off by 0.01
    async with Pipeline(stack, env={"OFFSETSTREAM_TODAY": TODAY}, console=True) as pipeline:
        await pipeline.ingest([EXAMPLES, withheld, not_ours, unbalanced], clinic_a)
        entry = letters.LetterEntry(
            payer_id="01312",
            payee_id="1234567893",
            fcn="FCNCLINICB0001",
            amount=Decimal("40.00"),
            letter_date=date(2026, 10, 1),
        )
        await letters.publish(pipeline.settings, [entry], clinic_b, "operator")
        await pipeline.settle(timeout=150)
        password = await pipeline.add_console_user("bea.biller", "biller", (clinic_a,))
        viewer = await pipeline.add_console_user("vic.viewer", "viewer", (clinic_a, clinic_b))
        SHOTS.mkdir(parents=True, exist_ok=True)
        url = pipeline.console_url.rstrip("/")
        yield Console(pipeline, url, clinic_a, clinic_b, password, viewer, stack.postgres.dsn)


@pytest.fixture
async def page(console: Console) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = await browser.new_page()
        try:
            yield context
        finally:
            await browser.close()


async def _login(page: Any, console: Console, user: str = "bea.biller", password: str | None = None) -> None:
    await page.goto(f"{console.url}/login")
    await page.screenshot(path=str(SHOTS / "login.png"))
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", password or console.password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"**/t/{console.clinic_a}/queue")


async def _fetchval(dsn: str, sql: str, *args: object) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def test_a_biller_identifies_a_queue_item_and_sees_it_applied(page: Any, console: Console) -> None:
    await _login(page, console)
    row = page.locator("tr", has_text=UNKNOWN_FCN)
    await row.wait_for()
    await page.screenshot(path=str(SHOTS / "queue.png"), full_page=True)
    # Work the item: the form is filled with the PLB's reference, the amount and the payment date.
    await row.get_by_role("link", name="Work").click()
    assert await page.input_value("input[name=fcn]") == UNKNOWN_FCN
    assert await page.input_value("input[name=amount]") == "60.00"
    await page.screenshot(path=str(SHOTS / "queue-item.png"), full_page=True)
    await page.get_by_role("button", name="Mark identified").click()
    await page.wait_for_url(f"**/t/{console.clinic_a}/queue?notice=*")
    # The letter event is applied by detection and matching: the receivable appears, the 60.00 settles it.

    async def settled() -> bool:
        status = await _fetchval(
            console.dsn,
            "SELECT status FROM matching.receivables WHERE tenant_id = $1 AND reference = $2",
            console.clinic_a,
            UNKNOWN_FCN,
        )
        return bool(status == "settled")

    await _settle_until(console.pipeline, settled)
    await page.goto(f"{console.url}/t/{console.clinic_a}/queue")
    assert await page.locator("tr", has_text=UNKNOWN_FCN).count() == 0
    await page.goto(f"{console.url}/t/{console.clinic_a}/receivables/{UNKNOWN_FCN}")
    body = await page.inner_text("main")
    assert "settled" in body and "60.00" in body
    await page.screenshot(path=str(SHOTS / "receivable-identified.png"), full_page=True)
    # A step on a receivable: the appeal pauses recoupment, and the history names the logged-in user.
    await page.goto(f"{console.url}/t/{console.clinic_a}/receivables/FCN26100500042")
    await page.select_option("select[name=action]", "appeal-filed")
    await page.fill("input[name=date]", TODAY)
    await page.get_by_role("button", name="Record").click()
    await page.wait_for_url("**/receivables/FCN26100500042?notice=*")

    async def paused() -> bool:
        return bool(
            await _fetchval(
                console.dsn,
                "SELECT paused FROM matching.receivables WHERE tenant_id = $1 AND reference = 'FCN26100500042'",
                console.clinic_a,
            )
        )

    await _settle_until(console.pipeline, paused)
    await page.reload()
    body = await page.inner_text("main")
    assert "recoupment paused (appeal)" in body
    assert "staff bea.biller: appeal filed" in body
    await page.goto(f"{console.url}/t/{console.clinic_a}/receivables/FCN26080300017")
    await page.screenshot(path=str(SHOTS / "receivable.png"), full_page=True)
    assert "2.94" in await page.inner_text(".owed")
    await page.goto(f"{console.url}/t/{console.clinic_a}/receivables")
    await page.screenshot(path=str(SHOTS / "receivables.png"), full_page=True)
    await page.goto(f"{console.url}/t/{console.clinic_a}/files")
    await page.screenshot(path=str(SHOTS / "files.png"), full_page=True)
    assert "2026-08-03_medicare_deferred.835" in await page.inner_text("main")


async def test_another_clinics_receivable_answers_404(page: Any, console: Console) -> None:
    await _login(page, console)
    # Clinic B's own URL, and B's receivable under A's URL: both simply do not exist for A's biller.
    other = await page.goto(f"{console.url}/t/{console.clinic_b}/receivables/FCNCLINICB0001")
    assert other is not None and other.status == 404
    under_mine = await page.goto(f"{console.url}/t/{console.clinic_a}/receivables/FCNCLINICB0001")
    assert under_mine is not None and under_mine.status == 404
    assert (
        await _fetchval(
            console.dsn, "SELECT count(*) FROM matching.receivables WHERE tenant_id = $1", console.clinic_b
        )
        == 1
    )  # it does exist, for clinic B


async def test_a_viewer_reads_both_clinics_but_cannot_act(page: Any, console: Console) -> None:
    await _login(page, console, "vic.viewer", console.viewer_password)
    answer = await page.goto(f"{console.url}/t/{console.clinic_b}/receivables/FCNCLINICB0001")
    assert answer is not None and answer.status == 200
    assert await page.locator("form[action$='/action']").count() == 0  # no step form for a viewer
    token = await page.locator("input[name=csrf]").first.input_value()
    target = f"{console.url}/t/{console.clinic_b}/receivables/FCNCLINICB0001/action"
    refused = await page.request.post(target, form={"action": "write-off", "date": TODAY, "csrf": token})
    assert refused.status == 403
    assert "viewer" in await refused.text()


async def test_a_form_without_its_csrf_token_is_refused(page: Any, console: Console) -> None:
    await _login(page, console)
    target = f"{console.url}/t/{console.clinic_a}/receivables/FCN26100500042/action"
    forged = await page.request.post(target, form={"action": "write-off", "date": TODAY})
    assert forged.status == 403
    wrong = await page.request.post(target, form={"action": "write-off", "date": TODAY, "csrf": "forged"})
    assert wrong.status == 403
    still_open = await _fetchval(
        console.dsn,
        "SELECT written_off FROM matching.receivables WHERE tenant_id = $1 AND reference = 'FCN26100500042'",
        console.clinic_a,
    )
    assert still_open == Decimal("0.00")


async def test_forecast_and_scorecard_show_the_ledgers_figures(page: Any, console: Console) -> None:
    await _login(page, console)
    conn = await asyncpg.connect(console.dsn)
    try:
        open_balance = await conn.fetchval(
            """SELECT sum(principal + interest_accrued - principal_recovered - interest_recovered - written_off)
               FROM matching.receivables WHERE tenant_id = $1 AND NOT paused AND merged_into IS NULL""",
            console.clinic_a,
        )
        withheld = await conn.fetch(
            """SELECT to_char(payment_date, 'YYYY-MM') AS month, sum(amount) AS withheld
               FROM matching.adjustments WHERE tenant_id = $1 AND amount > 0
                 AND bucket IN ('allocated', 'unmatched', 'staff_dismissed')
               GROUP BY 1 ORDER BY 1""",
            console.clinic_a,
        )
    finally:
        await conn.close()
    await page.goto(f"{console.url}/t/{console.clinic_a}/forecast")
    await page.screenshot(path=str(SHOTS / "forecast.png"), full_page=True)
    cells = await page.locator("tr[data-payer='01312'] td").all_inner_texts()
    # Every open balance of clinic A may be recouped already (their recoupment start has passed).
    assert cells[1:4] == [f"{open_balance:,.2f}"] * 3
    # Interest: FCN26100500042 (75.00 open at 11.50 %) adds 0.72 per 30-day period, FCN26080300017 (2.88 open)
    # 0.03; within 30 days one period of each comes due, two within 60, three within 90.
    assert cells[4:7] == ["0.75", "1.50", "2.25"]
    await page.goto(f"{console.url}/t/{console.clinic_a}/scorecard")
    await page.screenshot(path=str(SHOTS / "scorecard.png"), full_page=True)
    text = await page.inner_text("table")
    for row in withheld:
        assert f"01312\t{row['month']}\t{row['withheld']:,.2f}" in text
    # November: the 60.00 the biller identified is explained by staff, all of it.
    # It waited in the queue for less than a day of wall-clock time (the test's minutes).
    # median days to explain comes from notification's wall-clock records, which may trail the ledger: not pinned
    assert "01312\t2026-11\t60.00\t0.00 (0.0 %)\t60.00 (100.0 %)\t0.00 (0.0 %)\t0.00 (0.0 %)\t" in text
    csv_answer = await page.request.get(f"{console.url}/t/{console.clinic_a}/scorecard.csv")
    assert csv_answer.status == 200
    lines = (await csv_answer.text()).splitlines()
    assert lines[0].startswith("payer_id,month,withheld")
    assert len(lines) - 1 >= len(withheld)


async def test_a_biller_notes_assigns_and_dismisses_a_queue_item_as_not_ours(
    page: Any, console: Console
) -> None:
    await _login(page, console)
    row = page.locator("tr", has_text=NOT_OURS_FCN)
    await row.wait_for()
    await row.get_by_role("link", name="Work").click()
    item_url = page.url
    note = "payer confirms this FCN belongs to another group practice"
    await page.fill("textarea[name=note]", note)
    await page.get_by_role("button", name="Add note").click()
    await page.wait_for_url("**/queue/*?notice=*")
    assert await page.input_value("input[name=assignee]") == "bea.biller"
    await page.get_by_role("button", name="Assign").click()
    await page.wait_for_url("**/queue/*?notice=*")

    async def count(kind: str) -> int:
        return int(
            await _fetchval(
                console.dsn,
                """SELECT count(*) FROM matching.work_item_actions
                   WHERE tenant_id = $1 AND kind = $2 AND outcome = 'applied' AND entered_by = 'bea.biller'""",
                console.clinic_a,
                kind,
            )
        )

    async def noted_and_assigned() -> bool:
        return await count("note") == 1 and await count("assign") == 1

    await _settle_until(console.pipeline, noted_and_assigned)
    await page.goto(f"{console.url}/t/{console.clinic_a}/queue")
    cells = await page.locator("tr", has_text=NOT_OURS_FCN).locator("td").all_inner_texts()
    assert "bea.biller" in cells and "1" in cells  # the assignee and the note count
    await page.screenshot(path=str(SHOTS / "queue-assigned.png"), full_page=True)
    # Link to a receivable this clinic does not have: refused on the form, nothing is sent.
    await page.goto(item_url)
    await page.fill("input[name=receivable]", "FCNNOSUCH0001")
    await page.get_by_role("button", name="Link").click()
    assert "no receivable FCNNOSUCH0001 in this clinic" in await page.inner_text("[role=alert]")
    # Another clinic's URL for the same item answers 404, even with a valid token.
    token = await page.locator("input[name=csrf]").first.input_value()
    item_id = item_url.rstrip("/").rsplit("/", 1)[1]
    foreign = await page.request.post(
        f"{console.url}/t/{console.clinic_b}/queue/{item_id}/step", form={"step": "not_ours", "csrf": token}
    )
    assert foreign.status == 404
    # Not ours: one event; matching moves the 35.00 out of the queue into the staff-dismissed bucket.
    await page.goto(item_url)
    await page.get_by_role("button", name="Not ours").click()
    await page.wait_for_url("**/queue/*?notice=*")

    async def dismissed() -> bool:
        bucket = await _fetchval(
            console.dsn,
            "SELECT bucket FROM matching.adjustments WHERE tenant_id = $1 AND reference = $2",
            console.clinic_a,
            NOT_OURS_FCN,
        )
        return bool(bucket == "staff_dismissed")

    await _settle_until(console.pipeline, dismissed)
    await page.goto(f"{console.url}/t/{console.clinic_a}/queue")
    assert await page.locator("tr", has_text=NOT_OURS_FCN).count() == 0
    await page.goto(item_url)
    body = await page.inner_text("main")
    assert "no longer in the queue" in body
    assert "35.00 dismissed as not ours by bea.biller" in body
    history = await page.inner_text("#item-history")
    assert "not ours" in history and "note" in history and note in history
    await page.screenshot(path=str(SHOTS / "queue-item-not-ours.png"), full_page=True)
    assert await _fetchval(
        console.dsn,
        "SELECT dismissed_amount FROM matching.adjustments WHERE tenant_id = $1 AND reference = $2",
        console.clinic_a,
        NOT_OURS_FCN,
    ) == Decimal("35.00")
    # The scorecard counts it as withheld in September and dismissed as not ours, not as unexplained.
    await page.goto(f"{console.url}/t/{console.clinic_a}/scorecard")
    september = await page.locator("tr", has_text="2026-09").first.inner_text()
    assert "35.00 (" in september, september
    # A viewer reads the item and its history but has no step forms, and a posted step is refused.
    await page.context.clear_cookies()
    await _login(page, console, "vic.viewer", console.viewer_password)
    await page.goto(item_url)
    assert await page.locator("form[action$='/step']").count() == 0
    token = await page.locator("input[name=csrf]").first.input_value()
    refused = await page.request.post(f"{item_url}/step", form={"step": "note", "note": "x", "csrf": token})
    assert refused.status == 403


async def test_an_admin_replays_a_file_with_rejects_and_a_biller_may_not(page: Any, console: Console) -> None:
    admin = await console.pipeline.add_console_user("ada.admin", "admin", (console.clinic_a,))
    await _login(page, console, "ada.admin", admin)
    files_url = f"{console.url}/t/{console.clinic_a}/files"
    await page.goto(files_url)
    row = page.locator("tr", has_text=UNBALANCED)
    assert await page.locator("button", has_text="Replay").count() == 1  # only the file with a reject
    await row.get_by_role("button", name="Replay").click()
    await page.wait_for_url(f"{files_url}?notice=*")
    assert "replay of file" in await page.inner_text("main")

    async def replayed() -> bool:
        kinds = await _fetchval(
            console.dsn,
            "SELECT count(*) FROM intake.file_receipts WHERE tenant_id = $1 AND kind = 'replayed'",
            console.clinic_a,
        )
        return bool(kinds == 1)

    await _settle_until(console.pipeline, replayed)
    await page.goto(files_url)
    assert "1×" in await page.locator("tr", has_text=UNBALANCED).locator("td.replays").inner_text()
    await page.screenshot(path=str(SHOTS / "files-replayed.png"), full_page=True)
    sha256 = await _fetchval(
        console.dsn,
        "SELECT sha256 FROM intake.files WHERE tenant_id = $1 AND file_name = $2",
        console.clinic_a,
        UNBALANCED,
    )
    # A biller sees no Replay button, and a posted replay is refused.
    await page.context.clear_cookies()
    await _login(page, console)
    await page.goto(files_url)
    assert await page.locator("button", has_text="Replay").count() == 0
    token = await page.locator("input[name=csrf]").first.input_value()
    refused = await page.request.post(
        f"{files_url}/{sha256}/replay", form={"csrf": token, "request_id": "biller-try"}
    )
    assert refused.status == 403
