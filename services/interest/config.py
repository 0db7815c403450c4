"""Which payer policy governs a tenant's payer, and with which options.

``OFFSETSTREAM_POLICY_CONFIG`` names a JSON file (optional; without it ``Settings.payer_policies`` and
``Settings.default_policy`` decide, as they do for detection); ``data/policy_config.example.json``::

    {
      "tenants": {
        "*":        {"payers": {"87726": "ny"}},
        "clinic-a": {"default": {"policy": "commercial", "options": {"annual_rate": "0.12"}},
                     "payers": {"00431": {"policy": "ca", "options": {"offset_allowed": true}},
                                "01312": {"policy": "medicare", "options": {"partial_period_as_full": true}}}}
      }
    }

An entry is a policy name or ``{"policy": name, "options": {...}}``; options are fields of the policy (see
``services.interest.policies.BasePolicy``), rates as strings. For (tenant, payer) the first match wins:
the tenant's payer entry, the ``"*"`` payer entry, ``Settings.payer_policies``, the tenant's default, the
``"*"`` default, and last the policy named on the event (detection's choice). The file is validated when the
service starts: a typo in a policy or option name stops it rather than silently charging the wrong interest.
"""

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.interest.policies import PayerPolicy
from shared.settings import Settings

ENV_VAR = "OFFSETSTREAM_POLICY_CONFIG"
ANY_TENANT = "*"


class PolicyConfigError(ValueError):
    """The policy configuration names a policy that is not installed, or is not well formed."""


@dataclass(frozen=True)
class PolicyChoice:
    """A policy plugin name and the options applied to it."""

    policy: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyConfig:
    """Per-tenant overrides: (tenant or ``*``, payer) → choice, and tenant → default choice."""

    payers: Mapping[tuple[str, str], PolicyChoice] = field(default_factory=dict)
    defaults: Mapping[str, PolicyChoice] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str, origin: str = "policy config") -> "PolicyConfig":
        """Parse the JSON document described in the module docstring."""
        try:
            doc = json.loads(text)
            tenants = doc.get("tenants", {})
            payers = {
                (tenant, payer): _choice(entry)
                for tenant, body in tenants.items()
                for payer, entry in body.get("payers", {}).items()
            }
            defaults = {
                tenant: _choice(body["default"]) for tenant, body in tenants.items() if "default" in body
            }
        except (ValueError, AttributeError, KeyError, TypeError) as exc:
            raise PolicyConfigError(f"{origin}: not a valid policy configuration ({exc})") from exc
        return cls(payers, defaults)

    @classmethod
    def from_env(cls) -> "PolicyConfig":
        """The file named by ``OFFSETSTREAM_POLICY_CONFIG``, or an empty configuration."""
        path = os.environ.get(ENV_VAR)
        if not path:
            return cls()
        return cls.from_json(Path(path).read_text(), origin=path)

    def choice(self, tenant: str, payer: str, settings: Settings, named: str) -> PolicyChoice:
        """The governing choice for one tenant's payer (resolution order in the module docstring)."""
        for key in ((tenant, payer), (ANY_TENANT, payer)):
            if key in self.payers:
                return self.payers[key]
        if payer in settings.payer_policies:
            return PolicyChoice(settings.payer_policies[payer])
        for key2 in (tenant, ANY_TENANT):
            if key2 in self.defaults:
                return self.defaults[key2]
        return PolicyChoice(named)


def _choice(entry: Any) -> PolicyChoice:
    if isinstance(entry, str):
        return PolicyChoice(entry)
    options = entry.get("options", {})
    if not isinstance(options, dict):
        raise TypeError("options must be an object")
    return PolicyChoice(str(entry["policy"]), options)


class PolicyResolver:
    """Configured policy instances per (tenant, payer, event's policy name), built once and cached."""

    def __init__(self, plugins: Mapping[str, PayerPolicy], settings: Settings, config: PolicyConfig) -> None:
        self.plugins = dict(plugins)
        self.settings = settings
        self.config = config
        self._cache: dict[tuple[str, str, str], PayerPolicy] = {}
        for choice in [*config.payers.values(), *config.defaults.values()]:
            self._build(choice)

    def _build(self, choice: PolicyChoice) -> PayerPolicy:
        plugin = self.plugins.get(choice.policy)
        if plugin is None:
            installed = ", ".join(sorted(self.plugins)) or "none"
            raise PolicyConfigError(
                f"payer policy {choice.policy!r} is not installed (installed: {installed})"
            )
        return plugin.configured(choice.options) if choice.options else plugin

    def resolve(self, tenant: str, payer: str, named: str) -> PayerPolicy:
        """The policy governing a receivable; :class:`PolicyConfigError` when it is not installed."""
        key = (tenant, payer, named)
        if key not in self._cache:
            self._cache[key] = self._build(self.config.choice(tenant, payer, self.settings, named))
        return self._cache[key]
