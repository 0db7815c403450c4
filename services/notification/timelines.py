"""Receivable timelines from the payer policy plugins (group ``offsetstream.payer_policies``).

The policies are the one source of truth for a payer's dates (rebuttal, interest start, recoupment start,
appeal and contest deadlines), so notification asks them instead of repeating the rules. A policy is a plugin,
not interest's private code: this module reads it through the plugin group and builds the ``ReceivableFacts``
value its interface takes. A payer whose policy is not installed falls back to DOMAIN.md §3 (Medicare).
"""

from collections.abc import Mapping
from datetime import date
from typing import Any

from services.notification import domain


def policy_timelines(policies: Mapping[str, Any]) -> domain.TimelineOf:
    """A ``(policy name, determination date, identification date) → milestones`` function over the
    installed policies."""
    from policies.payers import ReceivableFacts  # the payer-policy interface's value type

    def timeline_of(policy: str, determination: date, identified_on: date | None) -> list[domain.Milestone]:
        plugin = policies.get(policy)
        if plugin is None or not hasattr(plugin, "timeline"):
            return domain.medicare_timeline(determination, identified_on)
        facts = ReceivableFacts(determination=determination, identified_on=identified_on)
        milestones: list[domain.Milestone] = plugin.timeline(facts)
        return sorted(milestones, key=lambda m: m[1])

    return timeline_of
