"""Compile the X12 reader (``services/intake/x12``) to C with mypyc, into ``.local/native``.

Why: the reader is plain, fully typed Python (``mypy --strict`` clean), and in CPython most of its time per
claim is interpreter dispatch around a few C calls. mypyc turns the same source into a C extension with no
code changes, so there is one reader, not a fast copy and a readable copy that could drift apart.

The extensions are written outside the source tree, next to a manifest holding the SHA-256 of the sources
they were built from. ``services/intake/x12/__init__.py`` uses them only when that manifest matches the
sources on disk, so editing a ``.py`` file can never leave a stale compiled module in use: the reader falls
back to the source until the next ``make setup`` (or this script) rebuilds. ``OFFSETSTREAM_X12_NATIVE=0``
forces the source.

Run: ``.venv/bin/python -m infra.build_native`` (``make setup`` does, and skips it when up to date). Needs a
C compiler and the Python headers; without them, or if compiling fails, it says so and exits 0, and the reader
runs from source (``tests/unit/test_x12_native.py`` fails where a compiler and headers exist but no build).
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.intake.x12.native import (  # noqa: E402  (needs ROOT on sys.path when run as a script)
    COMPILED_MODULES,
    GROUP,
    NATIVE_DIR,
    PACKAGE_DIR,
    manifest_text,
)


def build() -> int:
    """Build the extensions into :data:`NATIVE_DIR`; 0 when built or already current."""
    manifest = NATIVE_DIR / "MANIFEST"
    wanted = manifest_text()
    if manifest.is_file() and manifest.read_text() == wanted:
        print(f"native x12 reader up to date ({NATIVE_DIR})")
        return 0
    if shutil.which(os.environ.get("CC", "cc").split()[0]) is None:
        print("no C compiler: the x12 reader runs from source", file=sys.stderr)
        return 0
    try:
        _compile()
    except (Exception, SystemExit) as problem:  # setuptools reports a failed compiler run as SystemExit
        print(f"could not compile the x12 reader, it runs from source: {problem}", file=sys.stderr)
        return 0
    manifest.write_text(wanted)
    print(f"native x12 reader built: {len(COMPILED_MODULES)} modules in {NATIVE_DIR}")
    return 0


def _compile() -> None:
    """mypycify the modules and copy the extensions into a fresh :data:`NATIVE_DIR` (manifest not yet)."""
    from mypyc.build import mypycify
    from setuptools import setup

    sources = [str((PACKAGE_DIR / f"{name}.py").relative_to(ROOT)) for name in COMPILED_MODULES]
    with tempfile.TemporaryDirectory(prefix="x12-native-") as tmp:
        out = Path(tmp) / "lib"
        cwd = Path.cwd()
        os.chdir(ROOT)
        try:
            extensions = mypycify(sources, opt_level="3", group_name=GROUP, target_dir=str(Path(tmp) / "c"))
            os.chdir(tmp)  # away from pyproject.toml: this setup() builds the extensions only
            setup(
                name="offsetstream-x12-native",
                ext_modules=extensions,
                script_args=[
                    "-q",
                    "build_ext",
                    "--build-lib",
                    str(out),
                    "--build-temp",
                    str(Path(tmp) / "o"),
                ],
            )
        finally:
            os.chdir(cwd)
        built = out / PACKAGE_DIR.relative_to(ROOT)
        if NATIVE_DIR.exists():
            shutil.rmtree(NATIVE_DIR)
        NATIVE_DIR.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(built, NATIVE_DIR)


if __name__ == "__main__":
    raise SystemExit(build())
