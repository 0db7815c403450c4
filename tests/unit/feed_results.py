"""What the CSV and JSON feed tests share: reading one file's results as one error or one remittance, and
the check that an error a billing specialist sees names no PHI."""

from services.intake.feeds import FeedError, FeedParser, ParsedRemittance

TENANT = "tenant-a"
SECRET_PCN = "PCN-SECRET-4711"
"""A patient control number the feeds' bad rows carry; no error may repeat it."""


def parse_with(
    parser: FeedParser, content: bytes, file_name: str, sha256: str
) -> list[ParsedRemittance | FeedError]:
    """Every result of one file, for the test tenant."""
    return list(parser.parse(content, file_name=file_name, file_sha256=sha256, tenant_id=TENANT))


def only_error(results: list[ParsedRemittance | FeedError]) -> FeedError:
    assert len(results) == 1 and isinstance(results[0], FeedError), results
    return results[0]


def only_parsed(results: list[ParsedRemittance | FeedError]) -> ParsedRemittance:
    assert len(results) == 1 and isinstance(results[0], ParsedRemittance), results
    return results[0]


def assert_phi_free(error: FeedError, *secrets: str) -> None:
    text = " ".join([str(error), *error.location().values(), error.expected or ""])
    for secret in (SECRET_PCN, *secrets):
        assert secret not in text
