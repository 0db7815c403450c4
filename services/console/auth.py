"""Who is asking, and may they: argon2id password hashes, signed session cookies, CSRF tokens and roles.

Sessions are stateless signed cookies rather than rows, so the console needs no write access to the database
(its role may only read ``console.users``); revocation still works because every request re-reads the user and
refuses a disabled one. A session carries a random nonce; the CSRF token of every form is an HMAC of that nonce
(a synchronizer token bound to the session), and logging in draws a new nonce, so a token or cookie planted
before the login is worthless after it. Pure functions: the HTTP layer (``web.py``) sets and reads cookies.
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

Role = Literal["viewer", "biller", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "biller", "admin")
RANK = {role: index for index, role in enumerate(ROLES)}

_HASHER = PasswordHasher()  # argon2id, the library's current RFC 9106 low-memory parameters
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))
MIN_SECRET = 32
MIN_PASSWORD = 12


class ConsoleSecretMissing(RuntimeError):
    """The console was started without a usable session key."""


@dataclass(frozen=True)
class User:
    """A console user as read from ``console.users`` on each request."""

    username: str
    role: Role
    tenants: tuple[str, ...]

    def may(self, needed: Role) -> bool:
        """Whether the user's role includes ``needed`` (viewer < biller < admin)."""
        return RANK[self.role] >= RANK[needed]

    def sees(self, tenant: str) -> bool:
        """Whether the user's clinics include ``tenant``."""
        return tenant in self.tenants


@dataclass(frozen=True)
class Session:
    """What the cookie holds: the user (None before login), a CSRF nonce and an expiry (unix seconds)."""

    username: str | None
    nonce: str
    expires: int


def hash_password(password: str) -> str:
    """An argon2id PHC string for a new password (at least ``MIN_PASSWORD`` characters)."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a console password needs at least {MIN_PASSWORD} characters")
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; an unknown user (None) costs the same time as a wrong password,
    so the login page does not tell which user names exist."""
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_secret(secret: str | None) -> bytes:
    """The session key as bytes; refuses a missing or short one (no default key may ever sign a session)."""
    if not secret or len(secret) < MIN_SECRET:
        raise ConsoleSecretMissing(
            f"the console needs OFFSETSTREAM_CONSOLE_SECRET: {MIN_SECRET}+ random characters "
            "(python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return secret.encode()


def _mac(key: bytes, purpose: str, data: bytes) -> str:
    digest = hmac.new(key, purpose.encode() + b"\0" + data, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def new_session(username: str | None, minutes: int, now: float | None = None) -> Session:
    """A fresh session (a new nonce): anonymous for the login form, or the user's after a login."""
    now = time.time() if now is None else now
    return Session(username=username, nonce=secrets.token_urlsafe(18), expires=int(now + minutes * 60))


def encode_session(key: bytes, session: Session) -> str:
    """The cookie value: payload and its HMAC, both URL-safe."""
    payload = json.dumps({"u": session.username, "n": session.nonce, "e": session.expires}).encode()
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return f"{body}.{_mac(key, 'session', body.encode())}"


def decode_session(key: bytes, value: str | None, now: float | None = None) -> Session | None:
    """The session a cookie holds, or None when it is missing, forged, malformed or expired."""
    if not value or value.count(".") != 1:
        return None
    body, mac = value.split(".")
    if not hmac.compare_digest(mac, _mac(key, "session", body.encode())):
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        session = Session(username=raw["u"], nonce=str(raw["n"]), expires=int(raw["e"]))
    except (ValueError, KeyError, TypeError):
        return None
    return session if session.expires > (time.time() if now is None else now) else None


def csrf_token(key: bytes, session: Session) -> str:
    """The token every form of this session carries (hidden field ``csrf``, or header ``X-CSRF-Token``)."""
    return _mac(key, "csrf", session.nonce.encode())


def csrf_ok(key: bytes, session: Session | None, sent: str | None) -> bool:
    """Whether a state-changing request carries this session's token."""
    return session is not None and bool(sent) and hmac.compare_digest(csrf_token(key, session), sent or "")


class LoginThrottle:
    """Failed logins per user name and per client address: after ``limit`` failures within ``window`` seconds,
    further attempts are refused until the window has passed. In memory, per console process: enough to make
    guessing a password slow; a deployment with several console replicas keeps the proxy's rate limit too."""

    def __init__(self, limit: int = 5, window: float = 900.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(key, []) if now - t < self.window]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def allowed(self, keys: Sequence[str], now: float | None = None) -> bool:
        """Whether none of the keys (user name, address) has used up its attempts."""
        now = time.time() if now is None else now
        return all(len(self._recent(key, now)) < self.limit for key in keys)

    def failed(self, keys: Sequence[str], now: float | None = None) -> None:
        """Count one failed attempt against every key."""
        now = time.time() if now is None else now
        for key in keys:
            self._failures.setdefault(key, []).append(now)

    def succeeded(self, keys: Sequence[str]) -> None:
        """A good login clears the keys' failures."""
        for key in keys:
            self._failures.pop(key, None)


def parse_tenants(values: Sequence[str]) -> tuple[str, ...]:
    """Clinic ids as given (repeated ``--tenant``; comma-separated lists too), deduplicated, order kept."""
    found = [t.strip() for value in values for t in value.split(",") if t.strip()]
    return tuple(dict.fromkeys(found))
