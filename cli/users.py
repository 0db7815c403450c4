"""``offsetstream user add|list|disable``: who may log in to the staff console, with which role and clinics.

    offsetstream user add NAME --role biller --tenant clinic-a [--tenant clinic-b] [--password-stdin]
    offsetstream user list [--json]
    offsetstream user disable NAME

Run by an operator with the owner login (``OFFSETSTREAM_DATABASE_URL``): the console itself may only read the
table. The password is asked for (twice) or read from stdin, never taken from the command line, where the
shell history and ``ps`` would keep it; only its argon2id hash is stored.
"""

import argparse
import asyncio
import getpass
import json
import sys
from typing import Any

from cli import options
from cli.report import table
from services.console import auth, users
from shared import db
from shared.settings import get_settings


def _username(value: str) -> str:
    """A user name: lower-case letters, digits, ``.``, ``_``, ``-`` (it becomes ``entered_by`` on events)."""
    name = options.identifier(value).lower()
    if not name[0].isalnum() or any(not (c.isalnum() or c in "._-") for c in name) or len(name) > 64:
        raise argparse.ArgumentTypeError(f"user name {value!r}: letters, digits, '.', '_', '-' (max 64)")
    return name


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise ValueError("the two passwords differ")
    return first


async def _run(args: argparse.Namespace) -> int:
    conn = await db.connect(get_settings())
    try:
        if args.user_action == "add":
            try:
                hashed = auth.hash_password(_read_password(args.password_stdin))
            except ValueError as exc:
                print(f"offsetstream user add: {exc}", file=sys.stderr)
                return 2
            tenants = auth.parse_tenants(args.tenant)
            created = await users.add(conn, args.name, hashed, args.role, tenants)
            print(f"{'added' if created else 'updated'} {args.name} ({args.role}; {', '.join(tenants)})")
            return 0
        if args.user_action == "disable":
            if await users.disable(conn, args.name):
                print(f"disabled {args.name}")
                return 0
            print(f"no enabled user {args.name!r}", file=sys.stderr)
            return 1
        rows = await users.listing(conn)
        print(json.dumps(rows, default=str, indent=2) if args.json else table(rows))
        return 0
    finally:
        await conn.close()


def add_parsers(sub: Any) -> None:
    """Register ``user`` on the main parser."""
    user = sub.add_parser("user", help="staff console users: add, list, disable")
    acts = user.add_subparsers(dest="user_action", required=True)
    add = acts.add_parser("add", help="add a user (or reset its password, role and clinics)")
    add.add_argument("name", type=_username)
    add.add_argument("--role", choices=auth.ROLES, required=True)
    add.add_argument(
        "--tenant", action="append", required=True, type=options.tenant_id, help="clinic; repeatable"
    )
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    listing = acts.add_parser("list", help="every user, role and clinics (never the hashes)")
    listing.add_argument("--json", action="store_true")
    off = acts.add_parser("disable", help="stop a user from logging in (its sessions end at once)")
    off.add_argument("name", type=_username)


def dispatch(args: argparse.Namespace) -> int | None:
    """Run ``user``, or None when the command is another one."""
    return asyncio.run(_run(args)) if args.command == "user" else None
