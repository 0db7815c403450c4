"""The one plugin mechanism for all five plugin kinds: ``importlib.metadata`` entry-point groups.

Built-ins are registered in ``pyproject.toml`` under the same groups as third-party packages, so a plugin
installed with ``pip`` is found without touching this project. ``OFFSETSTREAM_PLUGINS_DISABLE`` (comma
separated ``group:name`` or ``name``) switches plugins off; ``OFFSETSTREAM_PLUGINS_TRACE=1`` logs each load.
"""

import logging
import os
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)

FEED_PARSERS = "offsetstream.feed_parsers"
DETECTION_RULES = "offsetstream.detection_rules"
PAYER_POLICIES = "offsetstream.payer_policies"
NOTIFICATION_CHANNELS = "offsetstream.notification_channels"
CLI_COMMANDS = "offsetstream.cli_commands"

GROUPS = (FEED_PARSERS, DETECTION_RULES, PAYER_POLICIES, NOTIFICATION_CHANNELS, CLI_COMMANDS)


class PluginLoadError(RuntimeError):
    """A plugin's entry point could not be imported or instantiated."""


def _disabled() -> set[str]:
    raw = os.environ.get("OFFSETSTREAM_PLUGINS_DISABLE", "")
    return {item.strip() for item in raw.split(",") if item.strip()}


def load_plugins(group: str) -> dict[str, Any]:
    """Instantiate every enabled plugin of a group, keyed by entry-point name, in name order.

    A class entry point is instantiated with no arguments; any other object is used as it is. A plugin that
    fails to load raises :class:`PluginLoadError` naming it: a half-loaded rule set would silently miss money.
    """
    if group not in GROUPS:
        raise ValueError(f"unknown plugin group {group!r}; expected one of {', '.join(GROUPS)}")
    disabled = _disabled()
    trace = os.environ.get("OFFSETSTREAM_PLUGINS_TRACE") == "1"
    found: dict[str, Any] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        if ep.name in disabled or f"{group}:{ep.name}" in disabled:
            continue
        try:
            target = ep.load()
            plugin = target() if isinstance(target, type) else target
        except Exception as exc:
            raise PluginLoadError(f"plugin {ep.name!r} of {group} failed to load: {exc}") from exc
        if trace:
            log.info("loaded plugin %s:%s from %s", group, ep.name, ep.value)
        found[ep.name] = plugin
    return found
