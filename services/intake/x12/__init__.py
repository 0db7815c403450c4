"""The built-in X12 835 (005010X221A1) feed parser: ``services.intake.x12:X12Parser``.

Layout: :mod:`.source` decodes byte blocks into a sliding text window, :mod:`.envelope` finds delimiters
and cuts the text into transactions, :mod:`.header` and :mod:`.claims` read one transaction each,
:mod:`.parser` ties them into the FeedParser plugin (``parse`` for bytes, ``parse_stream`` for blocks).
"""

from services.intake.x12.parser import X12Parser

__all__ = ["X12Parser"]
