"""Who gets which notification: the routing document (tenant or ``*`` → kind or ``*`` → destinations, plus a
default) validated into :class:`Routes`, whose first match wins. Pure: reading the file is the caller's job.
The document's format is in ``services/notification/README.md``."""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.notification.domain import DAILY_DIGEST, KINDS, Mode


class RoutingError(ValueError):
    """The routing file is not well formed, or names a channel, kind or mode that does not exist."""


@dataclass(frozen=True)
class Destination:
    """Where one notification goes: a channel plugin, its target (URL, e-mail address) and the mode."""

    channel: str
    target: str
    mode: Mode = "immediate"


ANY = "*"


@dataclass(frozen=True)
class Routes:
    """tenant (or ``*``) → kind (or ``*``) → destinations, plus a default; the first match wins:
    tenant+kind, tenant+``*``, ``*``+kind, ``*``+``*``, default. An empty list silences a kind."""

    table: Mapping[str, Mapping[str, tuple[Destination, ...]]] = field(default_factory=dict)
    default: tuple[Destination, ...] = ()

    @classmethod
    def parse(cls, doc: Any, channels: Iterable[str], default_webhook: str | None) -> "Routes":
        """Validate a routing document (see ``services/notification/README.md``); a webhook route without a
        target uses ``default_webhook`` (the ``webhook_url`` setting)."""
        known = set(channels)
        if not isinstance(doc, dict) or set(doc) - {"tenants", "default"}:
            raise RoutingError("routing file must be an object with 'tenants' and/or 'default'")
        tenants = doc.get("tenants", {})
        if not isinstance(tenants, dict):
            raise RoutingError("'tenants' must map tenant ids to {kind: [destination, ...]}")
        table: dict[str, dict[str, tuple[Destination, ...]]] = {}
        for tenant, kinds in tenants.items():
            if not isinstance(kinds, dict):
                raise RoutingError(f"tenant {tenant!r}: expected {{kind: [destination, ...]}}")
            for kind, entries in kinds.items():
                if kind != ANY and kind not in KINDS and kind != DAILY_DIGEST:
                    raise RoutingError(
                        f"tenant {tenant!r}: unknown kind {kind!r}; expected one of {', '.join(KINDS)}"
                    )
                where = f"tenant {tenant!r} kind {kind!r}"
                table.setdefault(str(tenant), {})[kind] = _destinations(
                    entries, known, default_webhook, where
                )
        default = _destinations(doc.get("default", []), known, default_webhook, "default")
        return cls(table, default)

    @classmethod
    def webhook_only(cls, url: str | None) -> "Routes":
        """The route without a routing file: everything immediately to the configured webhook, if any."""
        return cls({}, (Destination("webhook", url),) if url else ())

    def resolve(self, tenant: str, kind: str) -> tuple[Destination, ...]:
        """Destinations of one notification."""
        if kind == DAILY_DIGEST:
            return self.digest_destinations(tenant)
        for t in (tenant, ANY):
            kinds = self.table.get(t, {})
            for k in (kind, ANY):
                if k in kinds:
                    return kinds[k]
        return self.default

    def digest_destinations(self, tenant: str) -> tuple[Destination, ...]:
        """Everyone who takes some kind of this tenant's notifications as a digest; the digest itself is sent
        to them immediately."""
        found: dict[tuple[str, str], Destination] = {}
        for kind in KINDS:
            for d in self.resolve(tenant, kind):
                if d.mode == "digest":
                    found.setdefault((d.channel, d.target), Destination(d.channel, d.target, "immediate"))
        return tuple(found.values())


def _destinations(
    entries: Any, known: set[str], default_webhook: str | None, where: str
) -> tuple[Destination, ...]:
    if not isinstance(entries, list):
        raise RoutingError(f"{where}: expected a list of destinations")
    out = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) - {"channel", "target", "mode"}:
            raise RoutingError(f"{where}: a destination is {{channel, target, mode}}")
        channel, mode = entry.get("channel"), entry.get("mode", "immediate")
        target = entry.get("target") or (default_webhook if channel == "webhook" else None)
        if channel not in known:
            raise RoutingError(f"{where}: channel {channel!r} is not installed ({', '.join(sorted(known))})")
        if mode not in ("immediate", "digest"):
            raise RoutingError(f"{where}: mode must be 'immediate' or 'digest', not {mode!r}")
        if not isinstance(target, str) or not target:
            raise RoutingError(f"{where}: channel {channel!r} needs a target")
        out.append(Destination(channel, target, mode))
    return tuple(out)


def load_routes_document(text: str, suffix: str) -> Any:
    """Parse a routing file: YAML for ``.yaml``/``.yml``, JSON otherwise."""
    if suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)
