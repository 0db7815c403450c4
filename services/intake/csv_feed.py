"""The ``csv`` feed parser: remittances exported as one flat CSV table (format in ``docs/feeds.md``).

Why this shape: billing companies get remittance data from payer portals and clearinghouses as spreadsheet
exports far more often than as raw 835s. One table with a ``record`` column (``remittance``, ``claim``,
``adjustment``, ``plb``) carries everything reconciliation takes from an 835, one fact per row, so a
spreadsheet export or a short SQL query can produce it, and the same balancing rules as the 835 check it.

Reading goes in three steps, each in its own module: the table's layout and its rows grouped by remittance
(:mod:`.csv_columns`), each group's rows checked into a draft (:mod:`.csv_rows`), and the draft balanced
into contract payloads by :func:`~services.intake.drafts.assemble`, which the ``json`` feed shares. This
module reads the CSV syntax and the header and ties the steps together.
"""

import csv
import io
from collections.abc import Iterator

from services.intake.csv_columns import (
    HEADER_REQUIRED,
    KNOWN_COLUMNS,
    RECORD_TYPES,
    REMITTANCE,
    Row,
    RowGroup,
    decode,
)
from services.intake.csv_rows import RowReader
from services.intake.drafts import DraftError, Where, assemble, safe_name
from services.intake.feeds import FeedError, FeedErrorReason, ParsedRemittance

FEED = "csv"


class _CsvSyntaxError(Exception):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line, self.problem = line, problem


def _read_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank CSV records with the line each starts on (a quoted field may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    previous = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # csv's messages describe the syntax ("',' expected after '\"'"), never the field's content.
            raise _CsvSyntaxError(reader.line_num, str(exc)) from None
        start, previous = previous + 1, reader.line_num
        if any(cell.strip() for cell in cells):
            yield start, cells


class CsvParser:
    """Reads the offsetstream CSV remittance format; several remittances per file, linked by trace number.

    Stateless and pure, like every feed parser: the same bytes always give the same results and ids.
    """

    name = "csv"

    def sniff(self, head: bytes) -> bool:
        """True when the first non-blank line is a header naming both ``record`` and ``trace_number``."""
        text = decode(head)
        for line in text.splitlines():
            if line.strip():
                cells = {cell.strip().strip('"').strip().lower() for cell in line.split(",")}
                return {"record", "trace_number"} <= cells
        return False

    def parse(
        self, content: bytes, *, file_name: str, file_sha256: str, tenant_id: str
    ) -> Iterator[ParsedRemittance | FeedError]:
        """Yield each remittance (in the order of their ``remittance`` rows) or a FeedError for each bad one.

        Rows whose trace number matches no remittance row are reported as one FeedError per trace number, in
        the order of their first line, so no row is ever dropped silently. A header or CSV syntax problem
        is one file-level FeedError: no row can be trusted then.
        """
        try:
            records = list(_read_records(decode(content)))
        except _CsvSyntaxError as exc:
            yield FeedError(
                FeedErrorReason.SYNTAX,
                f"line {exc.line}: the CSV cannot be read: {exc.problem}",
                file_name,
                segment_ordinal=exc.line,
                expected="RFC 4180 CSV: comma separated, fields with commas or quotes in double quotes",
            )
            return
        if not records:
            yield FeedError(
                FeedErrorReason.MISSING_SEGMENT,
                "the file is empty",
                file_name,
                expected="a header line naming the columns, then one row per record",
            )
            return
        header_line, header_cells = records[0]
        columns = [cell.strip().lower() for cell in header_cells]
        problem = _check_header(columns, header_line)
        if problem is not None:
            yield problem.to_feed_error(file_name, None, None)
            return
        rows = [_row(line, cells, columns) for line, cells in records[1:]]
        if not rows:
            yield FeedError(
                FeedErrorReason.MISSING_SEGMENT,
                "the file has a header but no rows",
                file_name,
                expected="at least one remittance row",
            )
            return
        for group in _group_rows(rows):
            if group.index is None or group.problem is not None:
                problem = group.problem or _orphan_problem(group)
                yield problem.to_feed_error(file_name, group.trace, group.index)
                continue
            try:
                draft = RowReader(group).read()
                yield assemble(
                    draft, feed=FEED, file_name=file_name, file_sha256=file_sha256, tenant_id=tenant_id
                )
            except DraftError as exc:
                yield exc.to_feed_error(file_name, group.trace, group.index)


def _check_header(columns: list[str], line: int) -> DraftError | None:
    if "record" not in columns or "trace_number" not in columns:
        # Not a header at all (say, a file without one): say so without quoting cells, which may be data.
        return DraftError(
            FeedErrorReason.MISSING_SEGMENT,
            f"line {line}: the first line is not a header naming the columns record and trace_number",
            Where(line, "header", "record", f"line {line}"),
            expected="a header line first: " + ", ".join(HEADER_REQUIRED),
        )
    seen: set[str] = set()
    for position, name in enumerate(columns, start=1):
        shown = safe_name(name) if name else f"(empty, column {position})"
        if name not in KNOWN_COLUMNS:
            return DraftError(
                FeedErrorReason.INVALID_ELEMENT,
                f"line {line}: the header names an unknown column {shown} (column {position})",
                Where(line, "header", shown, f"line {line}"),
                expected="only the columns listed in docs/feeds.md (a misspelt column would lose data)",
            )
        if name in seen:
            return DraftError(
                FeedErrorReason.INVALID_ELEMENT,
                f"line {line}: the header names column {name} twice",
                Where(line, "header", name, f"line {line}"),
                expected="each column once",
            )
        seen.add(name)
    missing = [name for name in HEADER_REQUIRED if name not in seen]
    if missing:
        return DraftError(
            FeedErrorReason.MISSING_SEGMENT,
            f"line {line}: the header lacks required column(s) {', '.join(missing)}",
            Where(line, "header", missing[0], f"line {line}"),
            expected="a header naming: " + ", ".join(HEADER_REQUIRED),
        )
    return None


def _row(line: int, cells: list[str], columns: list[str]) -> Row:
    width_error = None
    if len(cells) > len(columns):
        width_error = f"line {line} has {len(cells)} fields but the header has {len(columns)}"
    values = {name: cells[pos].strip() if pos < len(cells) else "" for pos, name in enumerate(columns)}
    return Row(line, values, width_error)


def _group_rows(rows: list[Row]) -> list[RowGroup]:
    """Rows by trace number, in the order of each group's first line; remittance rows open groups."""
    groups: dict[str, RowGroup] = {}
    loose: list[RowGroup] = []
    count = 0
    for row in rows:
        if row.record != REMITTANCE:
            continue
        if not row.trace:
            loose.append(_loose(row, "column trace_number is empty", "trace_number", "the trace number"))
            continue
        group = groups.get(row.trace)
        if group is not None:
            group.problem = group.problem or DraftError(
                FeedErrorReason.INVALID_ELEMENT,
                f"line {row.line}: a second remittance row has the trace number of line {group.first_line}",
                Where(row.line, REMITTANCE, "trace_number", f"line {row.line}"),
                expected="one remittance row per trace number in a file",
            )
            continue
        count += 1
        groups[row.trace] = RowGroup(row.line, row.trace, count)
    orphans: dict[str, RowGroup] = {}
    for row in rows:
        if row.record == REMITTANCE and not row.trace:
            continue
        if not row.trace:
            loose.append(_loose(row, "column trace_number is empty", "trace_number", "the trace number"))
        elif row.trace in groups:
            groups[row.trace].rows.append(row)
        else:
            orphans.setdefault(row.trace, RowGroup(row.line, row.trace, None)).rows.append(row)
    ordered = [*groups.values(), *orphans.values(), *loose]
    return sorted(ordered, key=lambda g: g.first_line)


def _loose(row: Row, problem: str, column: str, expected: str) -> RowGroup:
    record = row.record if row.record in RECORD_TYPES else "row"
    return RowGroup(
        row.line,
        "",
        None,
        [row],
        DraftError(
            FeedErrorReason.INVALID_ELEMENT,
            f"line {row.line}: {problem}",
            Where(row.line, record, column, f"line {row.line}"),
            expected=expected,
        ),
    )


def _orphan_problem(group: RowGroup) -> DraftError:
    first = group.rows[0]
    lines = ", ".join(str(r.line) for r in group.rows[:10]) + (", …" if len(group.rows) > 10 else "")
    record = first.record if first.record in RECORD_TYPES else "row"
    return DraftError(
        FeedErrorReason.MISSING_SEGMENT,
        f"{len(group.rows)} row(s) (line(s) {lines}) have a trace number that no remittance row in the file has",
        Where(first.line, record, "trace_number", f"line {first.line}"),
        expected="a remittance row with the same trace_number",
    )
