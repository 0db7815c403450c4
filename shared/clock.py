"""The business date: wall-clock UTC date unless ``OFFSETSTREAM_TODAY`` pins it (tests, back-dated runs)."""

from datetime import UTC, date, datetime

from shared.settings import Settings


def today(settings: Settings) -> date:
    """Today's business date for timers (interest ticks, aging alerts)."""
    return settings.today or datetime.now(UTC).date()
