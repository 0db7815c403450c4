"""The mypyc-compiled X12 reader: used when current, never when stale, and identical to the source it is
built from, on good files and on broken ones; reading leaves the garbage collector as it found it."""

import gc
import io
import os
import random
import shutil
import subprocess
import sys
import sysconfig
from datetime import date
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest
from x12_builder import parse_all, remittances

from devtools.generate import iter_transactions, write_interchange
from services.intake import x12
from services.intake.x12 import native
from services.intake.x12 import parser as parser_module

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "835").glob("*.835"))

READ_ALL = """
import sys
from pathlib import Path
import services.intake.x12 as x12
print("native", x12.NATIVE)
for name in sys.argv[1:]:
    path = Path(name)
    content = path.read_bytes()
    parser = x12.X12Parser()
    for result in parser.parse(content, file_name=path.name, file_sha256="0" * 64, tenant_id="t"):
        print(repr(result))
    blocks = [content[i : i + 61] for i in range(0, len(content), 61)]
    for result in parser.parse_stream(blocks, file_name=path.name, file_sha256="0" * 64, tenant_id="t"):
        print(repr(result))
"""


def generated_file(transactions: int, claims: int, seed: int) -> str:
    """A payer-like file from the project's generator: several transactions of many claims each."""
    envelope = io.StringIO()
    write_interchange(envelope, "01312", "000000777", date(2026, 7, 6), [[]])
    isa, gs, ge, iea = envelope.getvalue().splitlines()
    body = [isa, gs]
    for segments, _ in iter_transactions(transactions, claims, seed=seed):
        body.extend(segments)
    body += [ge.replace("GE*0*", f"GE*{transactions}*"), iea]
    return "\n".join(body) + "\n"


def mutations(content: bytes, count: int, seed: int) -> list[bytes]:
    """Deterministic damage: flipped, dropped, duplicated bytes and stray delimiters at random places."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        data = bytearray(content)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            kind = rng.randrange(4)
            if kind == 0:
                data[at] = rng.randrange(256)
            elif kind == 1:
                del data[at]
            elif kind == 2:
                data[at:at] = data[at : at + rng.randint(1, 40)]
            else:
                data[at:at] = rng.choice([b"*", b"~", b":", b"\r\n", b"-", b"."])
        out.append(bytes(data))
    return out


CAN_COMPILE = (
    shutil.which("cc") is not None and (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file()
)


@pytest.mark.skipif(not CAN_COMPILE, reason="no C compiler or Python headers: the reader runs from source")
@pytest.mark.skipif(os.environ.get("OFFSETSTREAM_X12_NATIVE") == "0", reason="source reader asked for")
def test_the_compiled_reader_is_what_runs_after_make_setup() -> None:
    from services.intake.x12 import claims

    assert x12.NATIVE, "the compiled X12 reader is missing or stale: run `make setup`"
    assert Path(claims.__file__ or "").suffix == ".so"


def test_a_build_is_used_only_when_its_manifest_matches_the_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(native, "NATIVE_DIR", tmp_path)
    monkeypatch.delenv("OFFSETSTREAM_X12_NATIVE", raising=False)
    path = ["/src"]
    assert native.use_native(path) is False  # no build at all
    (tmp_path / "MANIFEST").write_text(native.manifest_text().replace("claims.py", "claims.py.old"))
    assert native.use_native(path) is False  # built from other sources: stale
    assert path == ["/src"]
    (tmp_path / "MANIFEST").write_text(native.manifest_text())
    assert native.use_native(path) is True
    assert native.use_native(path) is True
    assert path == [str(tmp_path), "/src"]  # in front, once
    monkeypatch.setenv("OFFSETSTREAM_X12_NATIVE", "0")
    assert native.use_native(["/src"]) is False


@pytest.mark.skipif(not x12.NATIVE, reason="the compiled reader is not built")
def test_compiled_and_source_readers_give_identical_results(tmp_path: Path) -> None:
    generated = generated_file(3, 120, seed=7).encode()
    corpus = [path.read_bytes() for path in EXAMPLES] + [generated]
    corpus += mutations(EXAMPLES[0].read_bytes(), 120, seed=1) + mutations(generated, 60, seed=2)
    first = EXAMPLES[0].read_bytes()
    as_4010 = first.replace(b"005010X221A1", b"004010X091A1")
    with_cr = b"CAS*CR*"  # valid in 4010 only
    corpus += [
        as_4010,  # read with the 4010 code lists
        as_4010.replace(b"CAS*CO*", with_cr),
        first.replace(b"CAS*CO*", with_cr),  # refused in 5010
        as_4010.replace(b"CLP*ACCT10002*1*", b"CLP*ACCT10002*5*"),
        first.replace(b"IEA*1*000000801~", b"IEA*1*0000008011~"),  # quoted whole
        first * 3,  # one interchange repeated
    ]
    names = []
    for index, content in enumerate(corpus):
        path = tmp_path / f"{index:03d}.835"
        path.write_bytes(content)
        names.append(str(path))

    def read_all(native_flag: str) -> list[str]:
        env = {"PATH": "/usr/bin:/bin", "OFFSETSTREAM_X12_NATIVE": native_flag}
        done = subprocess.run(
            [sys.executable, "-c", READ_ALL, *names],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=300,
        )
        return done.stdout.splitlines()

    compiled, source = read_all("1"), read_all("0")
    assert compiled[0] == "native True"
    assert source[0] == "native False"
    assert len(compiled) > 2 * len(corpus)
    assert sum("FeedError(" in line for line in source) > 50  # the damage was noticed, precisely
    assert compiled[1:] == source[1:]


@pytest.fixture
def every_transaction_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every transaction takes the parser's large-transaction path (collector paused, payloads frozen)."""
    monkeypatch.setattr(parser_module, "LARGE_TRANSACTION", 1)


@pytest.mark.usefixtures("every_transaction_large")
def test_reading_creates_no_reference_cycles() -> None:
    """The parser moves each transaction's payloads to the oldest generation, so a cycle there would only
    be found by a full collection: there must be none."""
    content = generated_file(3, 50, seed=3).encode() + EXAMPLES[0].read_bytes()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        results = parse_all(content)
        assert len(remittances(results)) == 4
        del results
        gc.collect()
        assert gc.garbage == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.mark.usefixtures("every_transaction_large")
def test_the_collector_is_left_as_found() -> None:
    content = EXAMPLES[0].read_bytes()
    assert gc.isenabled()
    assert len(remittances(parse_all(content))) == 1
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    gc.disable()
    try:
        parse_all(content)
        assert not gc.isenabled()
    finally:
        gc.enable()
    kept = [object() for _ in range(3)]  # a host that keeps objects frozen on purpose (shared.gc_tuning)
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        parse_all(content)
        assert gc.get_freeze_count() == frozen
        assert gc.isenabled()
    finally:
        gc.unfreeze()
    del kept


@pytest.mark.usefixtures("every_transaction_large")
def test_a_host_with_a_frozen_heap_still_reads_with_the_collector_paused() -> None:
    """The stages freeze their start-up heap (``shared.gc_tuning``): a large transaction is still read with
    no collection during it, only the constant-time hand-over to the oldest generation is left out."""
    content = generated_file(2, 400, seed=5).encode()
    kept = [object() for _ in range(3)]
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(50, 10, 10)  # a young collection every 50 allocations, were the collector running
    gc.callbacks.append(count)
    try:
        results = parse_all(content)
        assert len(remittances(results)) == 2
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*threshold)
        gc.unfreeze()
    del kept
    # 800 claims allocate tens of thousands of containers: unpaused, that is hundreds of collections
    assert len(collections) < 20, collections


def test_a_current_build_that_does_not_load_falls_back_to_the_source(tmp_path: Path) -> None:
    """Say the build matches the sources but was made for another C library: the reader must still work."""
    (tmp_path / "MANIFEST").write_text(native.manifest_text())
    (tmp_path / f"parser{EXTENSION_SUFFIXES[0]}").write_bytes(b"not an ELF file")
    probe = (
        "import sys, services.intake.x12 as x12\n"
        "from pathlib import Path\n"
        "path = Path(sys.argv[1])\n"
        "results = list(x12.X12Parser().parse(path.read_bytes(), file_name=path.name, file_sha256='0' * 64,"
        " tenant_id='t'))\n"
        "print(x12.NATIVE, type(results[0]).__name__, x12.parser.__file__.endswith('.py'))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "OFFSETSTREAM_X12_NATIVE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", probe, str(EXAMPLES[0])],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    assert done.stdout.split() == ["False", "ParsedRemittance", "True"]
    assert "compiled X12 reader not loadable" in done.stderr


def test_the_intake_service_exports_which_reader_it_runs() -> None:
    from prometheus_client import REGISTRY

    from services.intake.app import from_environment

    from_environment()  # building the stage sets the gauge

    assert REGISTRY.get_sample_value("remit_intake_x12_reader_compiled") == (1.0 if x12.NATIVE else 0.0)
