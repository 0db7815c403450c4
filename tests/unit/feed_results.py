"""What the ``csv`` and ``json`` feed tests share: one file read into a list, the one result picked out, an error
checked for PHI, and the id both documented examples' remittance must get (the two feeds carry the same sample).
"""

from uuid import UUID

from services.intake.feeds import FeedError, FeedParser, ParsedRemittance
from shared.ids import stable_id

TENANT = "tenant-a"
SECRET_PCN = "PCN-SECRET-4711"
"""A patient control number that must never appear in an error message."""
SAMPLE_REMITTANCE_ID: UUID = stable_id(
    "remittance", TENANT, "01112", "EFT20240315001", None, None, "EFT20240315001"
)
"""The remittance id of ``examples/csv/sample.csv`` and ``examples/json/sample.json`` read for :data:`TENANT`."""


def read_all(
    parser: FeedParser, content: bytes, file_name: str, file_sha256: str
) -> list[ParsedRemittance | FeedError]:
    """Every result of one file, read for :data:`TENANT`."""
    return list(parser.parse(content, file_name=file_name, file_sha256=file_sha256, tenant_id=TENANT))


def only_error(results: list[ParsedRemittance | FeedError]) -> FeedError:
    assert len(results) == 1 and isinstance(results[0], FeedError), results
    return results[0]


def only_parsed(results: list[ParsedRemittance | FeedError]) -> ParsedRemittance:
    assert len(results) == 1 and isinstance(results[0], ParsedRemittance), results
    return results[0]


def assert_phi_free(error: FeedError, *secrets: str) -> None:
    """Neither :data:`SECRET_PCN` nor any of ``secrets`` in the message, the location or what was expected."""
    text = " ".join([str(error), *error.location().values(), error.expected or ""])
    for secret in (SECRET_PCN, *secrets):
        assert secret not in text
