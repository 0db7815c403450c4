"""Use the mypyc-compiled build of this package when, and only when, it was built from these very sources.

``infra/build_native.py`` compiles the reader's modules into ``.local/native/services/intake/x12`` with a
manifest of the sources' SHA-256. :func:`use_native` checks that manifest against the files on disk and, when
it matches, puts that directory in front of the package's ``__path__``: the import system then loads each
listed submodule from its extension and everything else (this module, ``__init__``) from source. A missing,
stale or disabled build (``OFFSETSTREAM_X12_NATIVE=0``) leaves ``__path__`` alone, so the same source runs
interpreted with identical results, only slower. Kept out of the compiled set on purpose: it decides which
set to load.
"""

import hashlib
import logging
import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
NATIVE_DIR = Path(
    os.environ.get("OFFSETSTREAM_X12_NATIVE_DIR")
    or PACKAGE_DIR.parents[2] / ".local" / "native" / "services" / "intake" / "x12"
)
"""Where ``infra/build_native.py`` puts the extensions (``OFFSETSTREAM_X12_NATIVE_DIR`` moves it)."""
COMPILED_MODULES = ("codes", "values", "source", "delimiters", "walker", "header", "claims", "parser")
"""The submodules compiled, each ``<name>.py`` in this package."""
GROUP = "services.intake.x12.compiled"
"""mypyc's name for the shared library holding all compiled modules (``compiled__mypyc``)."""


def manifest_text() -> str:
    """What a current build's manifest says: the interpreter and the SHA-256 of every compiled source."""
    lines = [f"python {sys.implementation.cache_tag} {sys.version.split()[0]}"]
    for name in COMPILED_MODULES:
        digest = hashlib.sha256((PACKAGE_DIR / f"{name}.py").read_bytes()).hexdigest()
        lines.append(f"{digest}  {name}.py")
    return "\n".join(lines) + "\n"


def use_native(package_path: list[str]) -> bool:
    """Prefer the compiled modules for this package when the build is current; True when they are used."""
    if os.environ.get("OFFSETSTREAM_X12_NATIVE", "1") == "0":
        return False
    manifest = NATIVE_DIR / "MANIFEST"
    try:
        current = manifest.read_text() == manifest_text()
    except OSError:
        return False
    if current and str(NATIVE_DIR) not in package_path:
        package_path.insert(0, str(NATIVE_DIR))
    return current


def fall_back(package_path: list[str], package: str, problem: Exception) -> None:
    """Forget a compiled build that is current but does not load (say, built against another C library):
    take it off ``__path__`` and drop whatever of it was imported, so the sources load instead."""
    logging.getLogger(__name__).warning("compiled X12 reader not loadable, reading from source: %s", problem)
    while str(NATIVE_DIR) in package_path:
        package_path.remove(str(NATIVE_DIR))
    for name in (*COMPILED_MODULES, GROUP.rsplit(".", 1)[1] + "__mypyc"):
        sys.modules.pop(f"{package}.{name}", None)
