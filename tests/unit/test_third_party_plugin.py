"""A feed parser shipped as its own package is picked up through the entry-point group, untouched project.

The fixture package (``tests/plugins/fixture_feed``) is packed into a wheel and installed with
``pip install --target`` into a temporary directory (dist-info included, so ``importlib.metadata`` sees its
entry point); a fresh interpreter with that directory on ``PYTHONPATH`` loads the plugins, exactly as after an
operator ``pip install``s a plugin. The wheel is packed here from the fixture's own ``pyproject.toml`` (name,
version, entry points) rather than built by setuptools, because the project's virtualenv has no ``wheel``
package and a build with isolation would download one: the test stays offline and takes about a second.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "plugins" / "fixture_feed"

SAMPLE = """FIXTURE-PIPE|1
R|PAYER1|ACME HEALTH|1234567893|RIVERSIDE CLINIC|TRACE-77|2024-05-01|150.00
C|ACCT-9|1|200.00|120.00
P|1234567893|2024-12-31|WO|FCN-1|-30.00
"""

PROBE = """
import json, sys
from shared import plugins
from services.intake.domain import choose_parser
parsers = plugins.load_plugins(plugins.FEED_PARSERS)
content = open(sys.argv[1], "rb").read()
parser = choose_parser(parsers, content, "remit.pipe", None)
results = list(parser.parse(content, file_name="remit.pipe", file_sha256="0" * 64, tenant_id="t1"))
parsed = results[0]
print(json.dumps({
    "names": sorted(parsers),
    "chosen": parser.name,
    "remittance": parsed.remittance.model_dump(mode="json"),
    "claims": [c.model_dump(mode="json") for c in parsed.claims],
    "adjustments": [a.model_dump(mode="json") for a in parsed.adjustments],
}))
"""


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_wheel(source: Path, out_dir: Path) -> Path:
    """A pure-Python wheel of ``source`` whose metadata and entry points come from its pyproject.toml."""
    pyproject = tomllib.loads((source / "pyproject.toml").read_text())
    project = pyproject["project"]
    dist, version = project["name"].replace("-", "_"), project["version"]
    info = f"{dist}-{version}.dist-info"
    files: dict[str, bytes] = {}
    for package in pyproject["tool"]["setuptools"]["packages"]:
        for path in sorted((source / package).rglob("*.py")):
            files[path.relative_to(source).as_posix()] = path.read_bytes()
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {version}\n".encode()
    )
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: offsetstream-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    entry_points = "".join(
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in items.items()) + "\n"
        for group, items in project["entry-points"].items()
    )
    files[f"{info}/entry_points.txt"] = entry_points.encode()
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    wheel = out_dir / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def test_a_pip_installed_feed_plugin_is_discovered_and_parses(tmp_path: Path) -> None:
    wheel = build_wheel(FIXTURE, tmp_path)
    target = tmp_path / "site"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        env=env,
        timeout=120,
        capture_output=True,
    )
    assert list(target.glob("offsetstream_fixture_feed-*.dist-info"))
    sample = tmp_path / "remit.pipe"
    sample.write_text(SAMPLE)

    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(sample)],
        check=True,
        env={**env, "PYTHONPATH": str(target)},
        timeout=60,
        capture_output=True,
        text=True,
    )
    out = json.loads(probe.stdout)

    assert {"fixture_pipe", "csv", "json", "x12_835"} <= set(out["names"])
    assert out["chosen"] == "fixture_pipe"
    rem = out["remittance"]
    assert (rem["feed"], rem["trace_number"], rem["total_paid"]) == ("fixture_pipe", "TRACE-77", "150.00")
    assert (rem["claim_count"], rem["adjustment_count"]) == (1, 1)
    assert out["claims"][0]["paid"] == "120.00"
    assert out["claims"][0]["remittance_id"] == rem["remittance_id"]
    assert (out["adjustments"][0]["reason_code"], out["adjustments"][0]["amount"]) == ("WO", "-30.00")


def test_the_fixture_plugin_is_not_installed_in_the_project_environment() -> None:
    """Guards the test above: discovery must come from the temporary install, not a leftover one."""
    from shared import plugins

    assert "fixture_pipe" not in plugins.load_plugins(plugins.FEED_PARSERS)
