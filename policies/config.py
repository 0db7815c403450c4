"""Which payer policy governs a tenant's payer, with which options, and why — asked by every stage the same way.

A payer policy (entry-point group ``offsetstream.payer_policies``) has several parts: the reference layout
detection and matching read PLB references with, the recovery order matching splits money by, and the
interest rule, timeline and rule pack of the interest stage. All parts must come from the *same* choice, or a
tenant whose payer reads DME references would have its deferrals opened under one key and its recoupments
looked up under another. So the choice lives here and every stage resolves through :class:`PolicyResolver`.

``OFFSETSTREAM_POLICY_CONFIG`` (``Settings.policy_config``) names a JSON file, optional. Example
(``policies/data/policy_config.example.json``)::

    {
      "tenants": {
        "*":        {"payers": {"87726": "ny"}},
        "clinic-a": {"default": {"policy": "commercial", "options": {"annual_rate": "0.12"}},
                     "payers": {"00431": {"policy": "ca", "options": {"offset_allowed": true}},
                                "16013": {"policy": "medicare", "options": {"reference_layout": "dme"}}}}
      }
    }

An entry is a policy name or ``{"policy": name, "options": {...}}``; options are fields of the policy (see
``policies.payers.BasePolicy``), rates as strings. For (tenant, payer) the first match wins:

1. the tenant's payer entry, 2. the ``"*"`` payer entry, 3. ``Settings.payer_policies``
   (``OFFSETSTREAM_PAYER_POLICIES``) — reason ``configured``;
4. the Medicare contractor table (``policies/data/medicare_contractors.csv``: MAC Part A/B, DME MAC and RRB
   contractor numbers; DME rows read references with the ``dme`` layout) — reason ``table``;
5. the tenant's default, 6. the ``"*"`` default, 7. the commercial default — reason ``default``.

So a payer nothing names is never Medicare. The policy recorded on a receivable (detection's choice) is not
consulted: every stage resolves again, so a receivable opened under an older configuration follows the current
one. The file is validated when a service starts: a typo in a policy, option or layout name stops it rather
than silently charging the wrong interest or misreading references.
"""

import csv
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, Self, TypeVar

from contracts.references import LAYOUTS, ReferenceLayout, layout
from shared import plugins
from shared.settings import Settings

ENV_VAR = "OFFSETSTREAM_POLICY_CONFIG"
ANY_TENANT = "*"
MEDICARE = "medicare"
COMMERCIAL = "commercial"
"""The policy of a payer that no configuration names and the Medicare table does not list."""
MEDICARE_CONTRACTORS = Path(__file__).resolve().parent / "data" / "medicare_contractors.csv"
RETIRED_ENV = "OFFSETSTREAM_DEFAULT_POLICY"
"""Gone: it made every unknown payer Medicare. A ``"*"`` default in the policy configuration replaces it."""

Reason = Literal["configured", "table", "default"]


class PolicyConfigError(ValueError):
    """The policy configuration names a policy that is not installed, or is not well formed."""


class PolicyPlugin(Protocol):
    """What this module needs of a payer policy plugin (the full interface is interest's ``PayerPolicy``)."""

    @property
    def name(self) -> str:
        """Plugin name, as in the entry point."""

    @property
    def reference_layout(self) -> str:
        """Name of the :data:`contracts.references.LAYOUTS` entry this payer's PLB references use."""

    def configured(self, options: Mapping[str, Any]) -> Self:
        """A copy with per-tenant/payer options applied; unknown options are an error."""


P = TypeVar("P", bound=PolicyPlugin)


@dataclass(frozen=True)
class PolicyChoice:
    """A policy plugin name and the options applied to it."""

    policy: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolution:
    """The choice that governs a tenant's payer and why: ``reason`` is ``configured`` (a payer entry of the
    policy configuration or ``OFFSETSTREAM_PAYER_POLICIES``), ``table`` (the Medicare contractor table) or
    ``default`` (the tenant's or ``"*"`` default, else the commercial default); ``source`` names the entry."""

    choice: PolicyChoice
    reason: Reason
    source: str

    @property
    def policy(self) -> str:
        """The policy plugin's name."""
        return self.choice.policy

    def describe(self) -> str:
        """One line for staff: ``medicare (table: Medicare contractor table: 01312 Noridian JE Part B (Nevada))``."""
        return f"{self.policy} ({self.reason}: {self.source})"


# --- the Medicare contractor table ------------------------------------------------------------------------


@dataclass(frozen=True)
class MedicareContractor:
    """One row of ``policies/data/medicare_contractors.csv`` (its README says what each column means)."""

    payer_id: str
    jurisdiction: str
    workload: str
    region: str
    contractor: str
    reference_layout: str = MEDICARE

    def describe(self) -> str:
        """``01312 Noridian JE Part B (Nevada)``, ``16013 Noridian DME A``."""
        if self.workload in ("part_a", "part_b"):
            return f"{self.payer_id} {self.contractor} {self.jurisdiction} Part {self.workload[-1].upper()} ({self.region})"
        return f"{self.payer_id} {self.contractor} {self.jurisdiction}"

    @property
    def choice(self) -> PolicyChoice:
        """The Medicare policy with this contractor's reference layout."""
        if self.reference_layout == MEDICARE:
            return PolicyChoice(MEDICARE)
        return PolicyChoice(MEDICARE, {"reference_layout": self.reference_layout})


WORKLOADS = ("part_a", "part_b", "dme", "rrb")


def read_medicare_contractors(path: Path = MEDICARE_CONTRACTORS) -> dict[str, MedicareContractor]:
    """The table as payer id → row; ``#`` lines are comments. A malformed row, a payer id that is not five
    digits, a repeated id or an unknown layout is an error (a typo must not quietly make a payer commercial)."""
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    found: dict[str, MedicareContractor] = {}
    for number, row in enumerate(csv.DictReader(lines), start=2):
        try:
            entry = MedicareContractor(
                row["payer_id"].strip(),
                row["jurisdiction"].strip(),
                row["workload"].strip(),
                row["region"].strip(),
                row["contractor"].strip(),
                row["reference_layout"].strip() or MEDICARE,
            )
        except (KeyError, AttributeError) as exc:
            raise PolicyConfigError(f"{path.name} data row {number - 1}: missing column {exc}") from exc
        where = f"{path.name}: payer id {entry.payer_id!r}"
        if not (len(entry.payer_id) == 5 and entry.payer_id.isdigit()):
            raise PolicyConfigError(f"{where} is not a 5-digit contractor number")
        if entry.payer_id in found:
            raise PolicyConfigError(f"{where} is listed twice")
        if entry.workload not in WORKLOADS:
            raise PolicyConfigError(
                f"{where}: workload {entry.workload!r} is not one of {', '.join(WORKLOADS)}"
            )
        if entry.reference_layout not in LAYOUTS:
            raise PolicyConfigError(f"{where}: unknown reference layout {entry.reference_layout!r}")
        found[entry.payer_id] = entry
    return found


@lru_cache(maxsize=1)
def medicare_contractors() -> Mapping[str, MedicareContractor]:
    """The shipped table, read once per process."""
    return read_medicare_contractors()


# --- the configuration -------------------------------------------------------------------------------------


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
        """The file named by ``Settings.policy_config``, or an empty configuration.

        ``OFFSETSTREAM_DEFAULT_POLICY`` in the environment is refused: it used to make every payer nothing
        named Medicare, and ignoring it would change a deployment's interest without a word.
        """
        if os.environ.get(RETIRED_ENV):
            raise PolicyConfigError(
                f"{RETIRED_ENV} is no longer read: a payer no configuration names gets the commercial default "
                f'(or the Medicare contractor table\'s choice); set a "*" default in {ENV_VAR} instead'
            )
        path = settings.policy_config
        if path is None:
            return cls()
        return cls.from_json(Path(path).read_text(), origin=str(path))

    @classmethod
    def from_env(cls) -> "PolicyConfig":
        """The file named by ``OFFSETSTREAM_POLICY_CONFIG`` in this process's environment."""
        return cls.from_settings(Settings())

    def resolution(
        self,
        tenant: str,
        payer: str,
        settings: Settings,
        contractors: Mapping[str, MedicareContractor] | None = None,
    ) -> Resolution:
        """The governing choice for one tenant's payer and why (resolution order in the module docstring);
        ``contractors`` defaults to the shipped Medicare contractor table."""
        for who in (tenant, ANY_TENANT):
            if (who, payer) in self.payers:
                return Resolution(
                    self.payers[who, payer], "configured", f'{ENV_VAR} tenant "{who}" payer {payer}'
                )
        if payer in settings.payer_policies:
            return Resolution(
                PolicyChoice(settings.payer_policies[payer]),
                "configured",
                f"OFFSETSTREAM_PAYER_POLICIES {payer}",
            )
        table = medicare_contractors() if contractors is None else contractors
        if payer in table:
            return Resolution(
                table[payer].choice, "table", f"Medicare contractor table: {table[payer].describe()}"
            )
        for who in (tenant, ANY_TENANT):
            if who in self.defaults:
                return Resolution(self.defaults[who], "default", f'{ENV_VAR} tenant "{who}" default')
        return Resolution(
            PolicyChoice(COMMERCIAL),
            "default",
            f"payer {payer} is in no configuration and not in the Medicare contractor table",
        )

    def choice(self, tenant: str, payer: str, settings: Settings) -> PolicyChoice:
        """The governing choice for one tenant's payer (resolution order in the module docstring)."""
        return self.resolution(tenant, payer, settings).choice


def _choice(entry: Any) -> PolicyChoice:
    if isinstance(entry, str):
        return PolicyChoice(entry)
    options = entry.get("options", {})
    if not isinstance(options, dict):
        raise TypeError("options must be an object")
    return PolicyChoice(str(entry["policy"]), options)


class PolicyResolver(Generic[P]):
    """Configured policy instances per (tenant, payer), built once and cached, with the reason each applies.

    Every configured entry is built when the resolver is made, so a bad file fails at start-up.
    """

    def __init__(
        self,
        installed: Mapping[str, P],
        settings: Settings,
        config: PolicyConfig,
        contractors: Mapping[str, MedicareContractor] | None = None,
    ) -> None:
        self.plugins = dict(installed)
        self.settings = settings
        self.config = config
        self.contractors = medicare_contractors() if contractors is None else contractors
        self._cache: dict[tuple[str, str], tuple[P, Resolution]] = {}
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

    def _resolved(self, tenant: str, payer: str) -> tuple[P, Resolution]:
        key = (tenant, payer)
        if key not in self._cache:
            why = self.config.resolution(tenant, payer, self.settings, self.contractors)
            self._cache[key] = (self._build(why.choice), why)
        return self._cache[key]

    def resolve(self, tenant: str, payer: str) -> P:
        """The policy governing a tenant's payer; :class:`PolicyConfigError` when it is not installed."""
        return self._resolved(tenant, payer)[0]

    def resolution(self, tenant: str, payer: str) -> Resolution:
        """Why that policy governs (configured, table or default, and which entry)."""
        return self.config.resolution(tenant, payer, self.settings, self.contractors)

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
