"""Argument types of the ``offsetstream`` command: each turns one option's text into its value or refuses it.

A refusal raises :class:`argparse.ArgumentTypeError` with a one-line reason, so argparse prints the usage and
``offsetstream <command>: error: argument --limit: must be a whole number from 1 to 1000000, not '-1'`` and
exits with status 2, as for any other malformed command line. Nothing is sent or read from Kafka or
PostgreSQL before every option has passed.
"""

import math
import os
import re
from argparse import ArgumentTypeError
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A tenant (clinic) id: letters, digits, ``.``, ``_``, ``-``; at most 64; starts with a letter or digit."""

IDENTIFIER_MAX = 80
"""Longest payer, payee, FCN/reference, trace or claim number accepted (X12 N104 is at most 80 characters)."""

MONEY = re.compile(r"\d{1,9}(\.\d{1,2})?")
MONEY_MAX = Decimal("999999999.99")
_CENT = Decimal("0.01")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FIRST_YEAR, _LAST_YEAR = 1990, 2199


def _shown(text: str) -> str:
    """The value as typed, quoted and cut to 40 characters, for an error line."""
    return repr(text if len(text) <= 40 else text[:40] + "…")


def tenant_id(text: str) -> str:
    """A tenant id (see :data:`TENANT`)."""
    if not TENANT.fullmatch(text):
        raise ArgumentTypeError(
            f"{_shown(text)} is not a tenant id: up to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return text


def identifier(text: str) -> str:
    """A payer id, payee NPI/TIN, FCN/reference, trace or claim number: 1–80 characters once trimmed, no
    control characters. Returned trimmed."""
    value = text.strip()
    if not value:
        raise ArgumentTypeError("must not be empty")
    if len(value) > IDENTIFIER_MAX:
        raise ArgumentTypeError(f"{_shown(value)} is longer than {IDENTIFIER_MAX} characters")
    if any(not ch.isprintable() for ch in value):
        raise ArgumentTypeError(f"{_shown(value)} contains control characters")
    return value


def sha256_hex(text: str) -> str:
    """A file's hex SHA-256, as `offsetstream files --json` and the console print it (lower-cased)."""
    value = text.strip().lower()
    if len(value) != 64 or any(ch not in "0123456789abcdef" for ch in value):
        raise ArgumentTypeError(f"{_shown(value)} is not a hex SHA-256 (64 characters 0-9, a-f)")
    return value


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """A whole number from ``low`` to ``high`` (both included)."""

    def convert(text: str) -> int:
        value = text.strip().replace("_", "")
        if not re.fullmatch(r"[+-]?\d{1,19}", value) or not low <= int(value) <= high:
            raise ArgumentTypeError(f"must be a whole number from {low} to {high}, not {_shown(text)}")
        return int(value)

    convert.__name__ = "int"
    return convert


positive_int = bounded_int(1, 1_000_000)
"""A count or limit: 1 to a million."""


def seconds(text: str) -> float:
    """A positive number of seconds, at most a day (``--interval``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 86_400):
        raise ArgumentTypeError(f"must be a number of seconds above 0 and at most 86400, not {_shown(text)}")
    return value


def iso_date(text: str) -> date:
    """A calendar date written YYYY-MM-DD, between 1990 and 2199."""
    value = text.strip()
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise ArgumentTypeError(
            f"{_shown(text)} is not a date written YYYY-MM-DD (e.g. 2026-11-15)"
        ) from None
    if not _FIRST_YEAR <= day.year <= _LAST_YEAR:
        raise ArgumentTypeError(f"{_shown(text)} is outside the years {_FIRST_YEAR}–{_LAST_YEAR}")
    return day


def money(text: str) -> Decimal:
    """A positive dollar amount with at most 2 decimal places (``125``, ``125.5``, ``125.50``), at most
    999,999,999.99; returned with exactly two places."""
    value = text.strip()
    negative = value.startswith("-")
    if negative or not MONEY.fullmatch(value):
        why = "must be positive" if negative else "is not an amount"
        raise ArgumentTypeError(
            f"{_shown(text)} {why}: dollars with at most 2 decimal places, e.g. 125.00 (no sign, no commas)"
        )
    try:
        amount = Decimal(value).quantize(_CENT)
    except InvalidOperation:  # pragma: no cover - the pattern admits only plain decimals
        raise ArgumentTypeError(f"{_shown(text)} is not an amount") from None
    if amount <= 0:
        raise ArgumentTypeError(f"{_shown(text)} must be positive (above 0.00)")
    if amount > MONEY_MAX:
        raise ArgumentTypeError(f"{_shown(text)} is above {MONEY_MAX}")
    return amount


def _readable(path: Path, what: str) -> None:
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise ArgumentTypeError(f"{what} {path} is not readable (permission denied)")


def input_file(text: str) -> Path:
    """An existing, readable regular file."""
    path = Path(text)
    if not text.strip():
        raise ArgumentTypeError("a file name is needed")
    if path.is_dir():
        raise ArgumentTypeError(f"{path} is a folder, not a file")
    if not path.exists():
        raise ArgumentTypeError(f"no such file: {path}")
    if not path.is_file():
        raise ArgumentTypeError(f"{path} is not a regular file")
    _readable(path, "file")
    return path


def input_folder(text: str) -> Path:
    """An existing, readable folder."""
    path = Path(text)
    if not text.strip() or not path.exists():
        raise ArgumentTypeError(f"no such folder: {path}")
    if not path.is_dir():
        raise ArgumentTypeError(f"{path} is a file, not a folder")
    _readable(path, "folder")
    return path


def file_or_folder(text: str) -> Path:
    """An existing readable file, or a folder of them (``ingest``)."""
    path = Path(text)
    if text.strip() and path.is_dir():
        _readable(path, "folder")
        return path
    if not text.strip() or not path.exists():
        raise ArgumentTypeError(f"no such file or folder: {path}")
    return input_file(text)


def output_folder(text: str) -> Path:
    """A folder to write into: an existing folder, or a new one whose nearest existing parent is a folder."""
    path = Path(text)
    if not text.strip():
        raise ArgumentTypeError("a folder name is needed")
    if path.exists() and not path.is_dir():
        raise ArgumentTypeError(f"{path} is a file, not a folder")
    parent = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not parent.is_dir():
        raise ArgumentTypeError(f"{parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ArgumentTypeError(f"{parent} is not writable (permission denied)")
    return path


def generated_feed(text: str) -> Path:
    """A folder written by ``offsetstream generate --out`` (it holds expected.json)."""
    path = input_folder(text)
    if not (path / "expected.json").is_file():
        raise ArgumentTypeError(
            f"{path} holds no expected.json (write one with: offsetstream generate --out)"
        )
    _readable(path / "expected.json", "file")
    return path


def position(text: str) -> str:
    """A dead-letter record's ``PARTITION:OFFSET`` as ``dlt list`` prints it (kept as typed)."""
    from cli.dlt import parse_position

    try:
        parse_position(text)
    except ValueError as exc:
        raise ArgumentTypeError(str(exc)) from None
    return text


def feed_format(text: str) -> str:
    """The name of an installed feed parser (``x12_835``, ``csv``, ``json``, or a third-party plugin's)."""
    from shared import plugins

    names = sorted(plugins.load_plugins(plugins.FEED_PARSERS))
    if text not in names:
        raise ArgumentTypeError(f"{_shown(text)} is not a feed parser; one of: {', '.join(names)}")
    return text
