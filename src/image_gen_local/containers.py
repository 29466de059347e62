"""Text metadata inside PNG, JPEG, WebP and GIF files, written and read byte by byte.

A picture's recipe is added to the very bytes that are saved, without decoding or re-encoding the picture:
that costs a copy of the file (milliseconds even at 4K) instead of a new compression (seconds), and the
pixels stay exactly what the server sent or what the local crop made. Where each text goes is where other
tools look for it: PNG text chunks (iTXt), the XMP packet (PNG iTXt `XML:com.adobe.xmp`, JPEG APP1, WebP
`XMP ` chunk), comments (JPEG COM, GIF comment extension). Earlier copies of the texts we write are
replaced, so a picture is never labelled twice. Reading is bounded and never trusts a length it was given.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = "XML:com.adobe.xmp"  # where XMP lives in a PNG (an iTXt chunk), by the XMP specification
JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
JPEG_XMP_EXTENSION = b"http://ns.adobe.com/xmp/extension/\x00"
JPEG_SEGMENT_MAX = 65_533  # a JPEG segment's payload, its two length bytes excluded
JPEG_XMP_MAX = JPEG_SEGMENT_MAX - len(JPEG_XMP_HEADER)  # the largest XMP packet one APP1 segment holds
MAX_TEXT = 16 * 1024 * 1024  # a compressed text chunk is inflated up to this, never more
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
_WEBP_XMP_FLAG = 0x04
_WEBP_ALPHA_FLAG = 0x10


@dataclass(frozen=True)
class Labels:
    """The texts a picture carries: keyword -> text for PNG text chunks, one XMP packet, one comment."""

    texts: dict[str, str]  # PNG only; other formats carry the recipe inside the XMP packet or a comment
    xmp: bytes  # PNG, JPEG, WebP
    comments: tuple[str, ...]  # JPEG (COM segments) and GIF (comment extensions)


@dataclass(frozen=True)
class Found:
    """What a file says about itself: its format, its text chunks or comments, its XMP packet."""

    format: str  # PNG, JPEG, WEBP, GIF
    texts: dict[str, str]
    xmp: bytes | None
    comments: tuple[str, ...] = ()


MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


def sniff(data: bytes) -> str | None:
    """The container format by its first bytes, or None."""
    if data.startswith(PNG_SIGNATURE):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


def embed(data: bytes, labels: Labels) -> bytes:
    """The same picture carrying `labels`; raises ValueError for a format we cannot label or broken bytes."""
    writers = {"PNG": _png_embed, "JPEG": _jpeg_embed, "WEBP": _webp_embed, "GIF": _gif_embed}
    kind = sniff(data)
    if kind is None:
        raise ValueError("not a PNG, JPEG, WebP or GIF file")
    try:
        return writers[kind](data, labels)
    except IndexError:
        raise ValueError(f"a damaged {kind} file") from None


def read(data: bytes) -> Found | None:
    """Every text we know how to find; None when the bytes are not a picture format we read."""
    kind = sniff(data)
    try:
        if kind == "PNG":
            texts = dict(_png_texts(data))
            return Found(kind, texts, texts.get(XMP_KEYWORD, "").encode("utf-8") or None)
        if kind == "JPEG":
            return _jpeg_read(data)
        if kind == "WEBP":
            xmp = [bytes(p) for fourcc, p in _riff_chunks(data) if fourcc == b"XMP "]
            return Found(kind, {}, xmp[0] if xmp else None)
        if kind == "GIF":
            return Found(kind, {}, None, tuple(_gif_comments(data)))
    except (ValueError, IndexError):
        return Found(kind or "?", {}, None)  # damaged: nothing readable, but it is a picture format
    return None


# --- PNG -------------------------------------------------------------------------------------------------


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def _itxt(keyword: str, text: str) -> bytes:
    """An uncompressed international text chunk (UTF-8, any script)."""
    return _chunk(b"iTXt", keyword.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode("utf-8"))


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk, IEND included; raises ValueError on a truncated file."""
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind, end = data[pos + 4 : pos + 8], pos + 12 + length
        if end > len(data):
            raise ValueError("truncated PNG chunk")
        yield kind, pos, end
        if kind == b"IEND":
            return
        pos = end
    raise ValueError("PNG without its end chunk")


def _png_keyword(data: bytes, start: int) -> str:
    head = data[start + 8 : start + 8 + 80]
    return head.split(b"\x00", 1)[0].decode("latin-1")


def _png_embed(data: bytes, labels: Labels) -> bytes:
    ours = {*labels.texts, XMP_KEYWORD}
    new = b"".join(_itxt(k, v) for k, v in labels.texts.items()) + _itxt(
        XMP_KEYWORD, labels.xmp.decode("utf-8")
    )
    parts: list[bytes] = [PNG_SIGNATURE]
    for kind, start, end in _png_chunks(data):
        if kind in _TEXT_CHUNKS and _png_keyword(data, start) in ours:
            continue  # an earlier copy of a text we write: replaced, never doubled
        parts.append(data[start:end])
        if kind == b"IHDR":
            parts.append(new)  # before the pixels, where a reader that stops early still finds it
    return b"".join(parts)


def _png_texts(data: bytes) -> Iterator[tuple[str, str]]:
    for kind, start, end in _png_chunks(data):
        if kind in _TEXT_CHUNKS:
            keyword, _, rest = data[start + 8 : end - 4].partition(b"\x00")
            text = _png_text(kind, rest)
            if text is not None:
                yield keyword.decode("latin-1"), text


def _png_text(kind: bytes, rest: bytes) -> str | None:
    if kind == b"tEXt":
        return rest.decode("latin-1")
    if kind == b"zTXt":
        return _inflate(rest[1:]).decode("latin-1")
    compressed, rest = rest[:1] == b"\x01", rest[2:]
    _language, _, rest = rest.partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    return (_inflate(text) if compressed else text).decode("utf-8", "replace")


def _inflate(data: bytes) -> bytes:
    """Decompress at most MAX_TEXT bytes: a hostile file cannot make us inflate a bomb."""
    try:
        return zlib.decompressobj().decompress(data, MAX_TEXT)
    except zlib.error:
        raise ValueError("a damaged compressed text") from None


# --- JPEG ------------------------------------------------------------------------------------------------


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of each segment after SOI, up to and including the start of scan."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("damaged JPEG header")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers carry no length
            yield marker, pos, pos + 2
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if end > len(data) or end < pos + 4:
            raise ValueError("truncated JPEG segment")
        yield marker, pos, end
        if marker == 0xDA:  # start of scan: the compressed picture follows
            return
        pos = end
    raise ValueError("JPEG without a picture")


def _segment(marker: int, payload: bytes) -> bytes:
    if len(payload) > JPEG_SEGMENT_MAX:
        raise ValueError(f"{len(payload)} bytes do not fit in one JPEG segment")
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def _is_xmp(data: bytes, marker: int, start: int) -> bool:
    body = data[start + 4 : start + 4 + len(JPEG_XMP_EXTENSION)]
    return marker == 0xE1 and (body.startswith(JPEG_XMP_HEADER) or body.startswith(JPEG_XMP_EXTENSION))


def _jpeg_embed(data: bytes, labels: Labels) -> bytes:
    new = _segment(0xE1, JPEG_XMP_HEADER + labels.xmp)
    for comment in labels.comments:
        new += _segment(0xFE, comment.encode("utf-8")[:JPEG_SEGMENT_MAX])
    parts: list[bytes] = [data[:2]]
    placed = False
    end = 2
    for marker, start, end in _jpeg_segments(data):
        leading = marker == 0xE0 or (marker == 0xE1 and data[start + 4 : start + 10] == b"Exif\x00\x00")
        if not placed and not leading:  # after JFIF and EXIF, which readers expect first
            parts.append(new)
            placed = True
        if not (_is_xmp(data, marker, start) or marker == 0xFE):  # earlier XMP and comments: replaced
            parts.append(data[start:end])
    parts.append(data[end:])
    return b"".join(parts)


def _jpeg_read(data: bytes) -> Found:
    xmp: bytes | None = None
    comments: list[str] = []
    for marker, start, end in _jpeg_segments(data):
        body = data[start + 4 : end]
        if marker == 0xE1 and body.startswith(JPEG_XMP_HEADER) and xmp is None:
            xmp = body[len(JPEG_XMP_HEADER) :]
        elif marker == 0xFE:
            comments.append(body.decode("utf-8", "replace"))
    return Found("JPEG", {}, xmp, tuple(comments))


# --- WebP ------------------------------------------------------------------------------------------------


def _riff_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(fourcc, payload) of each chunk of a RIFF WEBP file."""
    limit = 8 + int.from_bytes(data[4:8], "little")
    if limit > len(data):
        raise ValueError("truncated WebP file")
    pos = 12
    while pos + 8 <= limit:
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + size > limit:
            raise ValueError("truncated WebP chunk")
        yield data[pos : pos + 4], data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)


def _riff_chunk(fourcc: bytes, payload: bytes) -> bytes:
    return fourcc + len(payload).to_bytes(4, "little") + payload + (b"\x00" if len(payload) & 1 else b"")


def _webp_canvas(fourcc: bytes, payload: bytes) -> tuple[int, int, bool]:
    """Width, height and alpha of a simple WebP's one picture, from its bitstream header."""
    if fourcc == b"VP8L" and payload[:1] == b"\x2f":
        bits = int.from_bytes(payload[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
    if fourcc == b"VP8 " and payload[3:6] == b"\x9d\x01\x2a":
        width = int.from_bytes(payload[6:8], "little") & 0x3FFF
        return width, int.from_bytes(payload[8:10], "little") & 0x3FFF, False
    raise ValueError("a WebP picture we cannot read the size of")


def _webp_embed(data: bytes, labels: Labels) -> bytes:
    chunks = [(f, p) for f, p in _riff_chunks(data) if f != b"XMP "]
    if not chunks:
        raise ValueError("an empty WebP file")
    first, payload = chunks[0]
    if first == b"VP8X":
        header = bytes([payload[0] | _WEBP_XMP_FLAG]) + payload[1:]
        chunks[0] = (first, header)
    else:  # the simple format has no room for metadata: extend it (VP8X first, then the picture as it is)
        width, height, alpha = _webp_canvas(first, payload)
        flags = _WEBP_XMP_FLAG | (_WEBP_ALPHA_FLAG if alpha else 0)
        canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        chunks.insert(0, (b"VP8X", bytes([flags, 0, 0, 0]) + canvas))
    body = b"".join(_riff_chunk(f, p) for f, p in [*chunks, (b"XMP ", labels.xmp)])
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body


# --- GIF -------------------------------------------------------------------------------------------------


def _gif_table(packed: int) -> int:
    """The size of the colour table a GIF's packed byte announces."""
    return 3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0


def _gif_blocks(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(extension label, or 0x2C for a picture, 0x3B for the trailer; start; end) of every block after the
    global colour table."""
    pos = 13 + _gif_table(data[10])
    while pos < len(data):
        introducer = data[pos]
        if introducer == 0x3B:
            yield introducer, pos, pos + 1
            return
        if introducer == 0x21:
            label, end = data[pos + 1], _gif_skip(data, pos + 2)
        elif introducer == 0x2C:  # descriptor, local colour table, LZW code size, then the picture's blocks
            label, end = introducer, _gif_skip(data, pos + 10 + _gif_table(data[pos + 9]) + 1)
        else:
            raise ValueError("damaged GIF")
        yield label, pos, end
        pos = end
    raise ValueError("GIF without its trailer")


def _gif_skip(data: bytes, pos: int) -> int:
    """Past a run of data sub-blocks (each one length byte and that many bytes, ended by a zero)."""
    while True:
        if pos >= len(data):
            raise ValueError("truncated GIF")
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _gif_comment(text: str) -> bytes:
    raw = text.encode("utf-8")
    blocks = b"".join(bytes([len(raw[i : i + 255])]) + raw[i : i + 255] for i in range(0, len(raw), 255))
    return b"\x21\xfe" + blocks + b"\x00"


def _gif_comment_text(data: bytes, start: int, end: int) -> str:
    pos, out = start + 2, bytearray()
    while pos < end and data[pos]:
        out += data[pos + 1 : pos + 1 + data[pos]]
        pos += 1 + data[pos]
    return out.decode("utf-8", "replace")


def _gif_embed(data: bytes, labels: Labels) -> bytes:
    blocks = list(_gif_blocks(data))
    head = blocks[0][1] if blocks else len(data)
    parts = [b"GIF89a", data[6:head], *map(_gif_comment, labels.comments)]  # comments need version 89a
    parts += [data[s:e] for label, s, e in blocks if label != 0xFE]  # earlier comments: replaced
    return b"".join(parts)


def _gif_comments(data: bytes) -> Iterator[str]:
    for label, start, end in _gif_blocks(data):
        if label == 0xFE:
            yield _gif_comment_text(data, start, end)
