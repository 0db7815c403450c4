"""Payer bytes in, a sliding window of text out: the parser never holds a whole file.

A file read from disk arrives as byte blocks (:data:`BLOCK_SIZE` each). :func:`decode_blocks` turns them
into text incrementally, and :class:`TextWindow` keeps only the part the envelope walker has not consumed
yet: the unterminated tail of the last block plus the next one. Memory is therefore one block plus the
transaction being read, whatever the size of the file.
"""

import codecs
from collections.abc import Iterable, Iterator

BLOCK_SIZE = 1 << 20
"""Bytes read (or sliced from an in-memory file) at a time."""

UTF8, LATIN1 = "utf-8", "latin-1"


def decode_blocks(chunks: Iterable[bytes], encoding: str | None = None) -> Iterator[str]:
    """The text of a file's byte blocks, decoded incrementally (a character split across blocks is kept whole).

    X12 text is ASCII plus an extended set: UTF-8 when it decodes, else Latin-1 (which always decodes).
    With ``encoding=None`` a stream cannot be rewound, so it is read as UTF-8 up to the first byte that is not
    UTF-8 and as Latin-1 from that byte on. For ASCII before that byte (the usual case: a Latin-1 accent in a
    name) this is exactly what decoding the whole file as Latin-1 gives. A caller holding the whole file
    passes the encoding of the whole file (see :func:`whole_file_encoding`) instead.
    """
    if encoding is not None:
        fixed = codecs.getincrementaldecoder(encoding)()
        for chunk in chunks:
            if text := fixed.decode(chunk):
                yield text
        if text := fixed.decode(b"", final=True):
            yield text
        return
    decoder = codecs.getincrementaldecoder(UTF8)()
    blocks = iter(chunks)
    for chunk in blocks:
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            yield from _latin1_from(exc)
            yield from (rest.decode(LATIN1) for rest in blocks)
            return
        if text:
            yield text
    try:
        text = decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        yield from _latin1_from(exc)
        return
    if text:
        yield text


def _latin1_from(exc: UnicodeDecodeError) -> Iterator[str]:
    """The undecoded bytes of a failed UTF-8 step: UTF-8 up to the bad byte, Latin-1 from it."""
    data: bytes = exc.object
    if exc.start:
        yield data[: exc.start].decode(UTF8)
    yield data[exc.start :].decode(LATIN1)


def whole_file_encoding(content: bytes) -> str:
    """``utf-8`` when the whole file decodes as UTF-8, else ``latin-1``; checked a block at a time.

    The check decodes and drops one block at a time, so it never holds the file's text: an in-memory file is
    read with one encoding throughout, as it always was.
    """
    if content.isascii():
        return UTF8
    decoder = codecs.getincrementaldecoder(UTF8)()
    view = memoryview(content)
    try:
        for start in range(0, len(content), BLOCK_SIZE):
            decoder.decode(view[start : start + BLOCK_SIZE])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return LATIN1
    return UTF8


def byte_blocks(content: bytes) -> Iterator[bytes]:
    """An in-memory file as :data:`BLOCK_SIZE` blocks, so it is decoded and cut like a file on disk."""
    for start in range(0, len(content), BLOCK_SIZE):
        yield content[start : start + BLOCK_SIZE]


class TextWindow:
    """The decoded text not yet consumed: ``text`` grows by whole blocks and is cut from the front.

    Positions are indexes into ``text``; :meth:`drop` shifts them, so a caller drops only between segments.
    """

    __slots__ = ("_blocks", "eof", "text")

    def __init__(self, blocks: Iterable[str]) -> None:
        self._blocks = iter(blocks)
        self.text = ""
        self.eof = False

    def more(self, until: str | None = None) -> bool:
        """Append the next block (or, with ``until``, blocks up to one holding it); False at end of input.

        Collecting the blocks of an over-long segment first and joining them once keeps a file without
        terminators linear instead of quadratic.
        """
        pending = [self.text]
        for block in self._blocks:
            pending.append(block)
            if until is None or until in block:
                self.text = "".join(pending)
                return True
        self.text = "".join(pending)
        self.eof = True
        return len(pending) > 1

    def fill(self, size: int) -> None:
        """Read until ``text`` has at least ``size`` characters or the input ends."""
        while len(self.text) < size and not self.eof:
            self.more()

    def find(self, char: str, start: int) -> int:
        """Index of ``char`` at or after ``start``, reading more text as needed; ``len(text)`` if none."""
        found = self.text.find(char, start)
        while found < 0 and not self.eof:
            searched = len(self.text)
            self.more(until=char)
            found = self.text.find(char, searched)
        return len(self.text) if found < 0 else found

    def drop(self, pos: int) -> None:
        """Forget the text before ``pos``."""
        self.text = self.text[pos:]

    def unwrap(self) -> None:
        """Drop every line break from here on, inside segments too: for a file whose segment terminator is
        not a line break but that was wrapped at a fixed width (80 columns is common from mainframes and
        some clearinghouses). CR and LF belong to neither X12 character set, so no element value loses a
        character; what is already in ``text`` is unwrapped as well, so positions must be found afresh."""
        self.text = unbroken(self.text)
        self._blocks = map(unbroken, self._blocks)

    def skip_preamble(self) -> int:
        """Position of the first character after a BOM and leading whitespace (``len(text)`` if none)."""
        pos = 0
        while True:
            text = self.text
            while pos < len(text) and (text[pos] == "\ufeff" or text[pos].isspace()):
                pos += 1
            if pos < len(text) or not self.more():
                return pos


def unbroken(text: str) -> str:
    """``text`` without CR and LF characters."""
    return text.replace("\r", "").replace("\n", "")
