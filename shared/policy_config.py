"""Which payer policy governs a tenant's payer, and with which options — asked by every stage the same way.

A payer policy (entry-point group ``offsetstream.payer_policies``) has several parts: the reference layout
detection and matching read PLB references with, the recovery order matching splits money by, and the
interest rule, timeline and rule pack of the interest stage. All parts must come from the *same* choice, or a
tenant whose payer reads DME references would have its deferrals opened under one key and its recoupments
looked up under another. So the choice lives here and every stage resolves through :class:`PolicyResolver`.

``OFFSETSTREAM_POLICY_CONFIG`` (``Settings.policy_config``) names a JSON file, optional; without it
``Settings.payer_policies`` and ``Settings.default_policy`` decide. Example
(``services/interest/data/policy_config.example.json``)::

    {
      "tenants": {
        "*":        {"payers": {"87726": "ny"}},
        "clinic-a": {"default": {"policy": "commercial", "options": {"annual_rate": "0.12"}},
                     "payers": {"00431": {"policy": "ca", "options": {"offset_allowed": true}},
                                "16013": {"policy": "medicare", "options": {"reference_layout": "dme"}}}}
      }
    }

An entry is a policy name or ``{"policy": name, "options": {...}}``; options are fields of the policy (see
``services.interest.policies.BasePolicy``), rates as strings. For (tenant, payer) the first match wins: the
tenant's payer entry, the ``"*"`` payer entry, ``Settings.payer_policies``, the tenant's default, the ``"*"``
default, the policy named on the event (detection's choice, recorded on the receivable), and last
``Settings.default_policy``. The file is validated when a service starts: a typo in a policy, option or layout
name stops it rather than silently charging the wrong interest or misreading references.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar

from shared import plugins
from shared.references import ReferenceLayout, layout
from shared.settings import Settings

ENV_VAR = "OFFSETSTREAM_POLICY_CONFIG"
ANY_TENANT = "*"


class PolicyConfigError(ValueError):
    """The policy configuration names a policy that is not installed, or is not well formed."""


class PolicyPlugin(Protocol):
    """What this module needs of a payer policy plugin (the full interface is interest's ``PayerPolicy``)."""

    @property
    def name(self) -> str:
        """Plugin name, as in the entry point."""

    @property
    def reference_layout(self) -> str:
        """Name of the :data:`shared.references.LAYOUTS` entry this payer's PLB references use."""

    def configured(self, options: Mapping[str, Any]) -> Self:
        """A copy with per-tenant/payer options applied; unknown options are an error."""


P = TypeVar("P", bound=PolicyPlugin)


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
    def from_settings(cls, settings: Settings) -> "PolicyConfig":
        """The file named by ``Settings.policy_config``, or an empty configuration."""
        path = settings.policy_config
        if path is None:
            return cls()
        return cls.from_json(Path(path).read_text(), origin=str(path))

    @classmethod
    def from_env(cls) -> "PolicyConfig":
        """The file named by ``OFFSETSTREAM_POLICY_CONFIG`` in this process's environment."""
        return cls.from_settings(Settings())

    def choice(self, tenant: str, payer: str, settings: Settings, named: str | None = None) -> PolicyChoice:
        """The governing choice for one tenant's payer (resolution order in the module docstring)."""
        for key in ((tenant, payer), (ANY_TENANT, payer)):
            if key in self.payers:
                return self.payers[key]
        if payer in settings.payer_policies:
            return PolicyChoice(settings.payer_policies[payer])
        for key2 in (tenant, ANY_TENANT):
            if key2 in self.defaults:
                return self.defaults[key2]
        return PolicyChoice(named or settings.default_policy)


def _choice(entry: Any) -> PolicyChoice:
    if isinstance(entry, str):
        return PolicyChoice(entry)
    options = entry.get("options", {})
    if not isinstance(options, dict):
        raise TypeError("options must be an object")
    return PolicyChoice(str(entry["policy"]), options)


class PolicyResolver(Generic[P]):
    """Configured policy instances per (tenant, payer, event's policy name), built once and cached.

    Every configured entry is built when the resolver is made, so a bad file fails at start-up.
    """

    def __init__(self, installed: Mapping[str, P], settings: Settings, config: PolicyConfig) -> None:
        self.plugins = dict(installed)
        self.settings = settings
        self.config = config
        self._cache: dict[tuple[str, str, str | None], P] = {}
        for choice in [*config.payers.values(), *config.defaults.values()]:
            self._build(choice)

    def _build(self, choice: PolicyChoice) -> P:
        plugin = self.plugins.get(choice.policy)
        if plugin is None:
            installed = ", ".join(sorted(self.plugins)) or "none"
            raise PolicyConfigError(
                f"payer policy {choice.policy!r} is not installed (installed: {installed})"
            )
        try:
            policy = plugin.configured(choice.options) if choice.options else plugin
            layout(policy.reference_layout)
        except ValueError as exc:  # the policy's PolicyOptionError, or references.UnknownLayoutError
            raise PolicyConfigError(f"payer policy {choice.policy!r}: {exc}") from exc
        return policy

    def resolve(self, tenant: str, payer: str, named: str | None = None) -> P:
        """The policy governing a tenant's payer; :class:`PolicyConfigError` when it is not installed.

        ``named`` is the policy recorded on the receivable (detection's choice), consulted after the
        configuration and before ``Settings.default_policy``.
        """
        key = (tenant, payer, named)
        if key not in self._cache:
            self._cache[key] = self._build(self.config.choice(tenant, payer, self.settings, named))
        return self._cache[key]

    def policy_name(self, tenant: str, payer: str) -> str:
        """The policy to record on a new receivable of this tenant's payer (detection names it)."""
        return self.resolve(tenant, payer).name

    def reference_layout(self, tenant: str, payer: str) -> ReferenceLayout:
        """How this tenant's payer lays out PLB references (detection and matching read them with it)."""
        return layout(self.resolve(tenant, payer).reference_layout)  # a known name: _build checked it


def resolver(settings: Settings) -> PolicyResolver[Any]:
    """The resolver a stage builds at start-up: installed payer policy plugins plus the configuration file."""
    return PolicyResolver(
        plugins.load_plugins(plugins.PAYER_POLICIES), settings, PolicyConfig.from_settings(settings)
    )
