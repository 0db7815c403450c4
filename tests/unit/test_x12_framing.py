"""The reader and the splitter/router frame a file alike: one envelope walker serves both.

For every file, however its envelope is broken, exactly one of two things holds: the reader reports a
problem with the envelope (a count, a control number, a missing trailer, a segment outside any transaction)
and the splitter refuses to cut the file; or the reader reports none, and the parts the splitter cuts read,
one after the other, as the whole file reads (same remittances, same transaction errors, in order). The
files are generated: newline and other terminators, wrapped lines, repeated interchanges (one control
number twice), several groups, and one piece of damage each.
"""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from x12_builder import DELIMITER_SETS, Delims, Transaction, groups, interchange, parse_all

from services.intake.feeds import FeedError, FeedErrorReason, ParsedRemittance
from services.intake.x12.split import SplitRefused, split_x12

SOUND = ("none", "se01", "se02", "padding", "wrap", "preamble")
"""Damage that leaves the envelope sound: the transaction with a wrong SE01/SE02 fails alone, in the parts as
in the whole; padding, wrapped lines and a BOM are layout the reader skips."""
DAMAGE = (
    "none",
    "se01",
    "se02",
    "ge01",
    "iea02",
    "drop SE",
    "drop ST",
    "drop GS",
    "drop GE",
    "drop IEA",
    "stray",
    "padding",
    "wrap",
    "preamble",
)


def outcome(results: list[ParsedRemittance | FeedError]) -> list[tuple[object, ...]]:
    """What must read the same in the parts as in the whole: each remittance's ids, amounts and warnings,
    each error's reason and message (not the file name, hash or transaction index)."""
    return [
        ("error", r.reason, r.message)
        if isinstance(r, FeedError)
        else (
            "remittance",
            r.remittance.remittance_id,
            r.remittance.total_paid,
            r.remittance.interchange_control_number,
            r.remittance.group_control_number,
            r.remittance.transaction_control_number,
            r.claims,
            r.adjustments,
            r.warnings,
        )
        for r in results
    ]


def framing_problems(results: list[ParsedRemittance | FeedError]) -> list[str]:
    """What the reader says about the envelope itself, as opposed to one transaction's own SE01/SE02 or
    content: the things a splitter must refuse rather than recount."""
    problems = []
    for r in results:
        if isinstance(r, ParsedRemittance):
            problems += [w for w in r.warnings if "outside any transaction" in w]
        elif r.reason in (FeedErrorReason.ENVELOPE, FeedErrorReason.UNKNOWN_FORMAT):
            if r.element not in ("SE01", "SE02"):
                problems.append(r.message)
        elif "outside any transaction" in r.message:
            problems.append(r.message)
    return problems


def assert_agree(text: str, limit: int) -> bool:
    """The property of this module, for one file and one part size; True when the file was cut."""
    whole = parse_all(text)
    problems = framing_problems(whole)
    content = text.encode()
    try:
        parts = split_x12(content, limit)
    except SplitRefused as refused:
        needed = re.search(r"alone needs (\d+) bytes", str(refused))
        if needed:
            assert int(needed.group(1)) > limit, str(refused)
        else:
            assert problems, (
                f"the splitter refused what the reader reads without an envelope problem: {refused}"
            )
        return False
    assert not problems, f"the splitter cut a file whose envelope the reader faults: {problems}"
    assert all(len(p) <= limit for p in parts)
    assert outcome([r for p in parts for r in parse_all(p)]) == outcome(whole)
    return True


def segments_of(text: str, d: Delims) -> list[str]:
    return [s.strip("\r\n") for s in text.split(d.segment) if s.strip("\r\n")]


def damaged(segments: list[str], d: Delims, damage: str, at: int) -> str:
    """The file with one piece of ``damage`` at the ``at``-th candidate segment (modulo their number)."""
    e = d.element
    kind = {"se01": "SE", "se02": "SE", "ge01": "GE", "iea02": "IEA", "stray": "GE"}.get(damage, damage[5:])
    where = [i for i, s in enumerate(segments) if s.startswith(kind + e)] or [0]
    i = where[at % len(where)]
    els = segments[i].split(e)
    if damage in ("se01", "ge01"):
        segments[i] = e.join([els[0], str(int(els[1]) + 1), *els[2:]])
    elif damage in ("se02", "iea02"):
        segments[i] = e.join([*els[:2], els[2] + "9", *els[3:]])
    elif damage.startswith("drop "):
        del segments[i]
    elif damage == "stray":
        segments.insert(i, e.join(["XYZ", "STRAY"]))
    separator = d.segment + d.newline
    text = separator.join(segments) + separator
    if damage == "padding":
        text += "\x00" * 7 + "\x1a"
    elif damage == "preamble":
        text = "\ufeff \r\n" + text
    elif damage == "wrap" and d.segment not in "\r\n":
        flat = text.replace("\r", "").replace("\n", "")
        text = "\r\n".join(flat[k : k + 80] for k in range(0, len(flat), 80)) + "\r\n"
    return text


@st.composite
def framed_files(draw: st.DrawFn) -> str:
    """One to three interchanges (control numbers drawn from two, so one may repeat), each of one to three
    groups of one or two transactions, random delimiters and layout, then one piece of damage."""
    d = draw(st.sampled_from(DELIMITER_SETS))
    text = ""
    for _ in range(draw(st.integers(1, 3))):
        isa13 = draw(st.sampled_from(["000000101", "000000102"]))
        text += interchange(draw(groups(most_per_group=2)), d, isa13=isa13)
    return damaged(segments_of(text, d), d, draw(st.sampled_from(DAMAGE)), draw(st.integers(0, 20)))


@settings(max_examples=80, deadline=None)
@given(text=framed_files(), fraction=st.floats(0.0, 1.0))
def test_the_reader_and_the_splitter_frame_every_file_alike(text: str, fraction: float) -> None:
    assert_agree(text, 1_500 + int(fraction * len(text.encode())))


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("d", DELIMITER_SETS, ids=lambda d: repr(d.segment + d.newline))
def test_each_kind_of_damage_with_each_terminator(damage: str, d: Delims) -> None:
    """Every damage with every terminator, each with a repeated interchange and two groups: the examples
    the generated files above may or may not reach."""
    layout = [[Transaction(st02="1001"), Transaction(st02="1002")], [Transaction(st02="2001")]]
    text = interchange(layout, d, isa13="000000101") * 2
    for limit in (1 << 20, 2_000):
        assert assert_agree(damaged(segments_of(text, d), d, damage, 1), limit) == (damage in SOUND)
