"""Payer policies: the interface every stage asks about a payer's rules (reference layout, recovery order,
interest terms, recoupment timeline) and the built-in policies (Medicare, commercial, state prompt-pay laws),
with the resolution of which policy applies to a payer (``policies.config``).

Detection, matching, interest and notification all use it, so it sits below the services and above the runtime.
"""
