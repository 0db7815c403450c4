"""Every option of ``offsetstream`` refuses a bad value with one clear line and status 2, never a traceback.

The table drives the real entry point (``cli.main.main``) in process with a bad value for each option of each
subcommand; nothing reaches Kafka or PostgreSQL, because every value is checked while the command line is
parsed (``cli.options``). A few cases run as a subprocess too, as staff would type them.
"""

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cli import main as cli
from cli import options
from services.intake import publish
from shared import kafka
from shared.failures import record_size
from shared.settings import REPO_ROOT, get_settings

MISSING = "/nonexistent/offsetstream-test/x.835"
ACT = ["action", "write-off", "FCN1", "--payer", "01312", "--payee", "1234567893", "--date", "2026-11-15"]
GRANT = [*ACT[:1], "ers-granted", *ACT[2:]]
LETTER = ["letter", "add", "--payer", "01312", "--payee", "1234567893", "--fcn", "FCN1"]
LETTER_OK = [*LETTER, "--amount", "10.00", "--date", "2026-11-15"]
ITEM = "5b0c3c8e-8f0e-4d0a-9a55-0f5c7d523c4e"

# (command line, a fragment the one-line error must contain); {dir} and {file} are an existing folder and file.
BAD: list[tuple[list[str], str]] = [
    # run
    (["run", "--examples", MISSING], "no such folder"),
    (["run", "--examples", "{file}"], "is a file, not a folder"),
    (["run", "--tenant", "a b"], "not a tenant id"),
    # ingest
    (["ingest", MISSING], "no such file or folder"),
    (["ingest", ""], "no such file or folder"),
    (["ingest", "/dev/null"], "not a regular file"),
    (["ingest", "{file}", "--tenant", "../../etc"], "not a tenant id"),
    (["ingest", "{file}", "--tenant", ""], "not a tenant id"),
    (["ingest", "{file}", "--tenant", "x" * 65], "not a tenant id"),
    (["ingest", "{file}", "--format", "pdf"], "not a feed parser; one of: csv, json, x12_835"),
    # parse
    (["parse", MISSING], "no such file"),
    (["parse", "{dir}"], "is a folder, not a file"),
    (["parse", "{file}", "--tenant", "tenant;drop"], "not a tenant id"),
    (["parse", "{file}", "--format", "X12"], "not a feed parser"),
    # reconcile, files
    (["reconcile", "--tenant", "-x"], "expected one argument"),
    (["reconcile", "--tenant", "é"], "not a tenant id"),
    (["files", "--limit", "-1"], "must be a whole number from 1 to 1000000, not '-1'"),
    (["files", "--limit", "0"], "must be a whole number from 1"),
    (["files", "--limit", "ten"], "must be a whole number"),
    (["files", "--limit", "1.5"], "must be a whole number"),
    (["files", "--limit", "9" * 30], "must be a whole number"),
    (["files", "--tenant", "a/b"], "not a tenant id"),
    (["files", "--replay", "abc"], "is not a hex SHA-256"),
    (["files", "--replay", "g" * 64], "is not a hex SHA-256"),
    (["files", "--replay", "a" * 64, "--entered-by", ""], "must not be empty"),
    (["files", "--replay", "a" * 64, "--request-id", "\x07"], "control characters"),
    # watch
    (["watch", MISSING], "no such folder"),
    (["watch", "{file}"], "is a file, not a folder"),
    (["watch", "{dir}", "--interval", "0"], "number of seconds above 0"),
    (["watch", "{dir}", "--interval", "-2"], "number of seconds above 0"),
    (["watch", "{dir}", "--interval", "nan"], "number of seconds above 0"),
    (["watch", "{dir}", "--interval", "inf"], "number of seconds above 0"),
    (["watch", "{dir}", "--interval", "soon"], "number of seconds above 0"),
    (["watch", "{dir}", "--tenant", "t 1"], "not a tenant id"),
    (["watch", "{dir}", "--format", "xml"], "not a feed parser"),
    # dlt list / show / replay
    (["dlt", "list", "--limit", "-1"], "must be a whole number from 1"),
    (["dlt", "list", "--limit", "0"], "must be a whole number from 1"),
    (["dlt", "list", "--topic", "remit.intake.v1"], "invalid choice"),
    (["dlt", "list", "--tenant", "*"], "not a tenant id"),
    (["phi", "relearn", "--tenant", "a/b"], "not a tenant id"),
    (["phi", "forget"], "invalid choice"),
    (["dlt", "list", "--reason", " "], "must not be empty"),
    (["dlt", "show", "three"], "is not PARTITION:OFFSET"),
    (["dlt", "show", "0:-1"], "is not PARTITION:OFFSET"),
    (["dlt", "show", "1"], "is not PARTITION:OFFSET"),
    (["dlt", "show", "0:1", "--topic", "nope.dlt"], "invalid choice"),
    (["dlt", "show", "0:1", "--content", "--raw"], "not allowed with argument"),
    (["dlt", "replay", "0:1", "x:y"], "is not PARTITION:OFFSET"),
    (["dlt", "replay", "--all", "--tenant", "a b"], "not a tenant id"),
    (["dlt", "replay", "--reason", "\x1b[2J"], "control characters"),
    (["dlt", "replay", "--all", "--topic", "remit.intake.v1"], "invalid choice"),
    # generate
    (["generate"], "one of the arguments --out --check is required"),
    (["generate", "--out", "{file}"], "is a file, not a folder"),
    (["generate", "--out", "{file}/below"], "is a file, not a folder"),
    (["generate", "--check", MISSING], "no such folder"),
    (["generate", "--check", "{dir}"], "holds no expected.json"),
    (["generate", "--out", "{dir}", "--tenants", "0"], "from 1 to 1000"),
    (["generate", "--out", "{dir}", "--payers", "-3"], "from 1 to 100"),
    (["generate", "--out", "{dir}", "--providers", "many"], "from 1 to 1000"),
    (["generate", "--out", "{dir}", "--days", "0"], "from 1 to 3660"),
    (["generate", "--out", "{dir}", "--seed", "-1"], "from 0 to 4294967295"),
    (["generate", "--out", "{dir}", "--claims-per-remit", "0"], "from 1 to 100000"),
    (["generate", "--out", "{dir}", "--tenant", "a b"], "not a tenant id"),
    # receivables, receivable, unmatched, remittance
    (["receivables", "--payer", ""], "must not be empty"),
    (["receivables", "--payer", "P" * 81], "longer than 80 characters"),
    (["receivables", "--tenant", "t\n1"], "not a tenant id"),
    (["receivable", "  "], "must not be empty"),
    (["receivable", "FCN\x001"], "control characters"),
    (["receivable", "FCN1", "--tenant", "%"], "not a tenant id"),
    (["unmatched", "--tenant", "a,b"], "not a tenant id"),
    (["remittance", ""], "must not be empty"),
    (["remittance", "EFT1", "--tenant", "a b"], "not a tenant id"),
    # letter add / import
    ([*LETTER, "--amount", "-5", "--date", "2026-11-15"], "must be positive"),
    ([*LETTER, "--amount", "0", "--date", "2026-11-15"], "must be positive"),
    ([*LETTER, "--amount", "12.345", "--date", "2026-11-15"], "at most 2 decimal places"),
    ([*LETTER, "--amount", "1e3", "--date", "2026-11-15"], "is not an amount"),
    ([*LETTER, "--amount", "NaN", "--date", "2026-11-15"], "is not an amount"),
    ([*LETTER, "--amount", "1,000.00", "--date", "2026-11-15"], "no commas"),
    ([*LETTER, "--amount", "1000000000.00", "--date", "2026-11-15"], "is not an amount"),
    ([*LETTER, "--amount", "10", "--date", "15/11/2026"], "not a date written YYYY-MM-DD"),
    ([*LETTER, "--amount", "10", "--date", "2026-02-30"], "not a date written YYYY-MM-DD"),
    ([*LETTER, "--amount", "10", "--date", "20261115"], "not a date written YYYY-MM-DD"),
    ([*LETTER, "--amount", "10", "--date", "0001-01-01"], "outside the years 1990–2199"),
    ([*LETTER, "--amount", "10"], "the following arguments are required: --date"),
    ([*LETTER_OK[:2], "--payer", "", *LETTER_OK[4:]], "must not be empty"),
    ([*LETTER_OK[:4], "--payee", "\t", *LETTER_OK[6:]], "must not be empty"),
    ([*LETTER_OK[:6], "--fcn", "F" * 200, *LETTER_OK[8:]], "longer than 80 characters"),
    ([*LETTER_OK, "--claim", ""], "must not be empty"),
    ([*LETTER_OK, "--kind", "refund"], "invalid choice"),
    ([*LETTER_OK, "--tenant", "a b"], "not a tenant id"),
    ([*LETTER_OK, "--entered-by", ""], "must not be empty"),
    (["letter", "import", MISSING], "no such file"),
    (["letter", "import", "{dir}"], "is a folder, not a file"),
    (["letter", "import", "{file}"], "not JSON"),
    (["letter", "import", "{letters}"], "not a letter: amount: Value error, not an amount"),
    (["letter", "import", "{file}", "--tenant", "a b"], "not a tenant id"),
    (["letter", "import", "{file}", "--entered-by", " "], "must not be empty"),
    # action (and ers-granted)
    (["action", "write-down", *ACT[2:]], "invalid choice"),
    ([*ACT[:2], "", *ACT[3:]], "must not be empty"),
    ([*ACT[:3], "--payer", "", *ACT[5:]], "must not be empty"),
    ([*ACT[:5], "--payee", "", *ACT[7:]], "must not be empty"),
    ([*ACT[:7], "--date", "yesterday"], "not a date written YYYY-MM-DD"),
    ([*ACT, "--amount", "-1"], "must be positive"),
    ([*ACT, "--amount", "ten"], "is not an amount"),
    ([*ACT, "--tenant", "a b"], "not a tenant id"),
    ([*ACT, "--entered-by", "\x07"], "control characters"),
    ([*ACT, "--installments", "3"], "--installments only apply to ers-granted"),
    ([*GRANT, "--installment", "250.001", "--installments", "3", "--first-due", "2026-12-01"], "2 decimal"),
    ([*GRANT, "--installment", "250", "--installments", "0", "--first-due", "2026-12-01"], "from 1 to 600"),
    ([*GRANT, "--installment", "250", "--installments", "601", "--first-due", "2026-12-01"], "from 1 to 600"),
    ([*GRANT, "--installment", "250", "--installments", "3", "--first-due", "12/01"], "YYYY-MM-DD"),
    (
        [*GRANT, "--installment", "250", "--installments", "3", "--first-due", "2026-11-01"],
        "before the grant",
    ),
    (
        [
            *GRANT,
            "--installment",
            "250",
            "--installments",
            "3",
            "--first-due",
            "2026-12-01",
            "--frequency",
            "daily",
        ],
        "invalid choice",
    ),
    (
        [
            *GRANT,
            "--installment",
            "250",
            "--installments",
            "3",
            "--first-due",
            "2026-12-01",
            "--final-installment",
            "0.00",
        ],
        "must be positive",
    ),
    ([*GRANT, "--installment", "250"], "ers-granted needs --installments, --first-due"),
    # queue (work-queue items)
    (["queue", "link", "item-1", "FCN1"], "not a work item id"),
    (["queue", "link", ITEM, ""], "must not be empty"),
    (["queue", "link", ITEM, "FCN1", "--tenant", "a b"], "not a tenant id"),
    (["queue", "link", ITEM, "FCN1", "--entered-by", ""], "must not be empty"),
    (["queue", "link", ITEM, "FCN1", "--payee", " "], "must not be empty"),
    (["queue", "link", ITEM, "FCN1", "--request-id", "\x07"], "control characters"),
    (["queue", "not-ours", "x"], "not a work item id"),
    (["queue", "not-ours", ITEM, "--tenant", "a/b"], "not a tenant id"),
    (["queue", "not-ours", ITEM, "--entered-by", ""], "must not be empty"),
    (["queue", "not-ours", ITEM, "--payee", ""], "must not be empty"),
    (["queue", "not-ours", ITEM, "--request-id", ""], "must not be empty"),
    (["queue", "assign", ITEM, ""], "must not be empty"),
    (["queue", "assign", ITEM, "ann", "--tenant", "a b"], "not a tenant id"),
    (["queue", "assign", ITEM, "ann", "--entered-by", ""], "must not be empty"),
    (["queue", "assign", ITEM, "ann", "--payee", ""], "must not be empty"),
    (["queue", "assign", ITEM, "ann", "--request-id", ""], "must not be empty"),
    (["queue", "note", ITEM, "  "], "a note must not be empty"),
    (["queue", "note", ITEM, "n" * 2001], "at most 2000 characters"),
    (["queue", "note", ITEM, "text", "--tenant", "a b"], "not a tenant id"),
    (["queue", "note", ITEM, "text", "--entered-by", ""], "must not be empty"),
    (["queue", "note", ITEM, "text", "--payee", ""], "must not be empty"),
    (["queue", "note", ITEM, "text", "--request-id", ""], "must not be empty"),
    (["queue", "show", "nope"], "not a work item id"),
    (["queue", "show", ITEM, "--tenant", "a b"], "not a tenant id"),
    (["queue", "frob", ITEM], "invalid choice"),
    (["queue", "list", "--tenant", "a b"], "not a tenant id"),
    # ledger, db, topics
    (["ledger", "check", "--tenant", "a b"], "not a tenant id"),
    (["ledger", "audit"], "invalid choice"),
    (["db", "drop"], "invalid choice"),
    (["topics", "delete"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
    # user (staff console logins)
    (["user", "add", "Ann Smith", "--role", "biller", "--tenant", "c1"], "user name"),
    (["user", "add", "ann", "--role", "root", "--tenant", "c1"], "invalid choice"),
    (["user", "add", "ann", "--role", "biller", "--tenant", "../c1"], "not a tenant id"),
    (["user", "disable", "ann smith"], "user name"),
]


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "folder"
    folder.mkdir()
    file = tmp_path / "era.835"
    file.write_text("ISA*00*not a real file~")
    letters = tmp_path / "letters.json"
    letters.write_text(
        '[{"payer_id": "01312", "payee_id": "1", "fcn": "F", "amount": "x", "letter_date": "2026-01-01"}]'
    )
    return {"dir": str(folder), "file": str(file), "letters": str(letters)}


@pytest.fixture(autouse=True)
def nothing_reachable(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Kafka and PostgreSQL on a port where nothing listens: a case that got past its checks would fail
    loudly instead of touching a developer's running stack."""
    monkeypatch.setenv("OFFSETSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("OFFSETSTREAM_KAFKA_USERNAME", "operator")
    monkeypatch.setenv("OFFSETSTREAM_KAFKA_PASSWORD", "nobody-listens-there")
    monkeypatch.setenv("OFFSETSTREAM_DATABASE_URL", "postgresql://nobody:x@127.0.0.1:9/none")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize(("argv", "fragment"), BAD, ids=[" ".join(argv)[:70] for argv, _ in BAD])
def test_a_bad_value_is_refused_in_one_line_with_status_2(
    argv: list[str], fragment: str, places: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run([arg.format(**places) for arg in argv], capsys)
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("offsetstream"), err
    assert fragment in last, err


def test_every_option_of_every_subcommand_is_in_the_table() -> None:
    """An option added later without a bad-value case (and so, likely, without a checking type) fails here."""
    import argparse

    def walk(
        parser: argparse.ArgumentParser, path: tuple[str, ...]
    ) -> dict[tuple[str, ...], argparse.Action]:
        found: dict[tuple[str, ...], argparse.Action] = {}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found |= walk(child, (*path, name))
            elif not isinstance(action, argparse._HelpAction | argparse._StoreTrueAction):
                found[(*path, action.option_strings[0] if action.option_strings else action.dest)] = action
        return found

    found_options = walk(cli.build_parser(), ())
    tried = {" ".join(argv) for argv, _ in BAD}
    untried = []
    for (*command, option), action in found_options.items():
        value_checked = action.type is not None or action.choices is not None
        assert value_checked, f"offsetstream {' '.join(command)} {option} takes any text"
        if option.startswith("--") and not any(
            line.startswith(" ".join(command)) and f" {option} " in f" {line} " for line in tried
        ):
            untried.append(f"{' '.join(command)} {option}")
    assert not untried, f"no bad-value case for: {untried}"


def test_help_and_good_values_still_parse(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "offsetstream" in capsys.readouterr().out
    args = cli.build_parser().parse_args(
        [*LETTER, "--amount", "125.5", "--date", "2026-11-15", "--claim", " I1 "]
    )
    assert (args.amount, args.claim, args.payer) == (Decimal("125.50"), ["I1"], "01312")
    args = cli.build_parser().parse_args(["files", "--limit", "1", "--tenant", "clinic-a.b_2"])
    assert (args.limit, args.tenant) == (1, "clinic-a.b_2")


def test_unreachable_kafka_or_postgres_is_one_line_and_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["files"], capsys)
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("offsetstream files: cannot connect")


def test_a_file_just_under_the_cap_is_refused_before_the_producer_would_refuse_it() -> None:
    """The value alone fits in MAX_MESSAGE_BYTES, the record (key, batch overhead) does not: the file is
    refused with the reason, where it used to pass the check and end in aiokafka's MessageSizeTooLargeError."""
    overhead = len(publish.raw_file_message(b"", "near.csv", "t1", "cli")[1])
    size = (kafka.MAX_MESSAGE_BYTES - overhead) * 3 // 4 - 3
    content = b"a" * size
    key, value = publish.raw_file_message(content, "near.csv", "t1", "cli")
    assert kafka.MAX_MESSAGE_BYTES - 100 < len(value) <= kafka.MAX_MESSAGE_BYTES
    assert record_size(key, value, []) > kafka.MAX_MESSAGE_BYTES
    with pytest.raises(publish.FileRefused, match="file too large"):
        publish.raw_file_messages(content, "near.csv", "t1", "cli")
    smaller = b"a" * (size - 1024)
    [(key, value)] = publish.raw_file_messages(smaller, "near.csv", "t1", "cli")
    assert record_size(key, value, []) <= kafka.MAX_MESSAGE_BYTES


def test_ingest_of_a_file_just_under_the_cap_says_why_and_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sent: list[bytes] = []

    class Producer:
        def __init__(self, **_: Any) -> None: ...

        async def start(self) -> None: ...

        async def stop(self) -> None: ...

        async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
            sent.append(value)

    monkeypatch.setattr(publish, "AIOKafkaProducer", Producer)
    overhead = len(publish.raw_file_message(b"", "near.csv", "t1", "cli")[1])
    near = tmp_path / "near.csv"
    near.write_bytes(b"a" * ((kafka.MAX_MESSAGE_BYTES - overhead) * 3 // 4 - 3))
    code, err = _run(["ingest", str(near), "--tenant", "t1"], capsys)
    assert (code, sent) == (1, [])
    assert "Traceback" not in err and "file too large" in err and str(near) in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["files", "--limit", "-1"], "argument --limit: must be a whole number"),
        (["dlt", "show", "0"], "is not PARTITION:OFFSET"),
        (["action", "write-off", "F", "--payer", "P", "--payee", "1", "--date", "2026-13-01"], "YYYY-MM-DD"),
    ],
)
def test_as_typed_in_a_shell(argv: list[str], fragment: str) -> None:
    env = {**os.environ, "OFFSETSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:9"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *argv],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and fragment in done.stderr
    assert len(done.stderr.strip().splitlines()[-1]) < 200


def test_money_keeps_two_places() -> None:
    assert options.money("7") == Decimal("7.00")
    assert options.money("999999999.99") == Decimal("999999999.99")
