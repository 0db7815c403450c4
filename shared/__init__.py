"""The runtime every stage stands on: the stream stage, settings, PostgreSQL pool and roles, deterministic ids,
the plugin loader, telemetry, broker administration, failure classification and the outbound PHI scrubber.

No domain decisions and no operator commands live here; it imports only ``contracts`` (never ``policies``,
``services`` or ``cli``).
"""
