"""The new staff commands parse as documented, and refuse dangerous or malformed requests without a broker."""

from pathlib import Path

import pytest

from cli import main as cli


def test_new_subcommands_parse_with_their_defaults(tmp_path: Path) -> None:
    parser = cli.build_parser()
    (inbox := tmp_path / "inbox").mkdir()
    (era := tmp_path / "a.835").write_text("ISA~")
    args = parser.parse_args(["dlt", "list"])
    assert (args.topic, args.limit, args.json) == ("remit.intake.dlt", None, False)
    args = parser.parse_args(["dlt", "show", "0:3", "--topic", "remit.claim-payments.dlt", "--content"])
    assert (args.position, args.topic, args.content, args.raw) == (
        "0:3",
        "remit.claim-payments.dlt",
        True,
        False,
    )
    args = parser.parse_args(["dlt", "replay", "--reason", "unbalanced", "1:2", "0:9"])
    assert (args.reason, args.positions, args.replay_all) == ("unbalanced", ["1:2", "0:9"], False)
    args = parser.parse_args(["watch", str(inbox), "--tenant", "t9", "--interval", "5"])
    assert (args.folder, args.tenant, args.interval) == (inbox, "t9", 5.0)
    args = parser.parse_args(["files", "--tenant", "t9", "--json"])
    assert (args.tenant, args.json) == ("t9", True)
    # The existing commands still parse.
    assert parser.parse_args(["ingest", str(era)]).paths == [era]
    assert parser.parse_args(["db", "migrate"]).action == "migrate"


def test_show_refuses_content_and_raw_together_and_unknown_topics(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["dlt", "show", "0:1", "--content", "--raw"])
    with pytest.raises(SystemExit):
        parser.parse_args(["dlt", "list", "--topic", "remit.intake.v1"])
    capsys.readouterr()


def test_replay_without_a_selection_is_refused_before_touching_kafka(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["dlt", "replay"]) == 2
    assert "--all" in capsys.readouterr().err


def test_a_malformed_position_is_reported_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dlt", "show", "three"]) == 2
    assert "PARTITION:OFFSET" in capsys.readouterr().err


def test_watch_needs_an_existing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["watch", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
