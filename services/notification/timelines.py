"""Receivable timelines from the payer policy plugins (group ``offsetstream.payer_policies``).

The policies are the one source of truth for a payer's dates (rebuttal, interest start, recoupment start,
appeal and contest deadlines), so notification asks them instead of repeating the rules. A policy is a plugin,
not interest's private code: this module reads it through the plugin group and builds the ``ReceivableFacts``
value its interface takes. A payer whose policy is not installed (or whose plugin fails) falls back to the
built-in Medicare policy's own timeline, so the rule is written once, in ``policies.payers``.
"""

from collections.abc import Mapping
from datetime import date
from typing import Any

from policies.payers import MedicarePolicy, ReceivableFacts
from services.notification import domain


def policy_timelines(policies: Mapping[str, Any]) -> domain.TimelineOf:
    """A ``(policy name, determination date, identification date) → milestones`` function over the
    installed policies."""

    def timeline_of(policy: str, determination: date, identified_on: date | None) -> list[domain.Milestone]:
        plugin = policies.get(policy)
        if plugin is None or not hasattr(plugin, "timeline"):
            return medicare_fallback(determination, identified_on)
        facts = ReceivableFacts(determination=determination, identified_on=identified_on)
        milestones: list[domain.Milestone] = plugin.timeline(facts)
        return sorted(milestones, key=lambda m: m[1])

    return timeline_of


def medicare_fallback(determination: date, identified_on: date | None = None) -> list[domain.Milestone]:
    """The built-in Medicare policy's timeline (rebuttal day 15, interest day 31, recoupment day 41, and the
    60-day report-and-return deadline of a provider-identified overpayment), for a policy that cannot answer."""
    facts = ReceivableFacts(determination=determination, identified_on=identified_on)
    return sorted(MedicarePolicy().timeline(facts), key=lambda m: m[1])
