"""The built-in X12 835 (005010X221A1) feed parser: ``services.intake.x12:X12Parser``.

Layout: :mod:`.source` decodes byte blocks into a sliding text window, :mod:`.delimiters` reads an ISA's
delimiters and tells a wrapped file, :mod:`.walker` (the one envelope walker) cuts the text into transactions
and checks the envelope, :mod:`.header` and :mod:`.claims` read one transaction each, :mod:`.parser` ties
them into the FeedParser plugin (``parse`` for bytes, ``parse_stream`` for blocks). :mod:`.split` cuts a
file into smaller X12 files between transactions, with the same walker (not compiled: it runs when a file is
published, not per claim).

``make setup`` compiles those modules with mypyc (:mod:`.native`); ``NATIVE`` says whether this process
loaded the compiled build (current with the sources) or the sources themselves.
"""

from services.intake.x12.native import fall_back, use_native

NATIVE = use_native(__path__)
if NATIVE:
    try:
        from services.intake.x12 import parser as _loaded  # noqa: F401  (the compiled modules load here)
    except ImportError as problem:
        fall_back(__path__, __name__, problem)
        NATIVE = False

from services.intake.x12.parser import X12Parser  # noqa: E402  (after __path__ is settled)

__all__ = ["NATIVE", "X12Parser"]
