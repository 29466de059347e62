"""How the emulator reads a request the way the real server does: the `Request` its application is handed,
axum's JSON extractor, multipart forms, the edits form's image fields (the declared MIME is trusted, never
sniffed), and sniffing for the record."""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from .replies import APPLICATION_JSON, Reply, plain


@dataclass
class Request:
    """One HTTP request as the application sees it; header names are looked up case-insensitively.

    `unreadable` is set by the HTTP edge when it could not read the body (a bad Content-Length, a body over
    the limit): the application then records the request and answers that.
    """

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    unreadable: Reply | None = None
    received: float = 0.0  # time.monotonic() when it arrived; 0 means "now"

    def __post_init__(self) -> None:
        self.headers = {name.lower(): value for name, value in dict(self.headers).items()}

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def key(self) -> str | None:
        """auth.rs: the first of Authorization / x-api-key / x-goog-api-key present is the key presented."""
        for name in ("Authorization", "x-api-key", "x-goog-api-key"):
            value = self.header(name)
            if value is not None:
                return value.removeprefix("Bearer ") if name == "Authorization" else value
        return None


# Pillow format → the MIME type a client should declare for such bytes.
SNIFFED_MIME: tuple[tuple[str, str], ...] = (
    ("PNG", "image/png"),
    ("JPEG", "image/jpeg"),
    ("MPO", "image/jpeg"),
    ("WEBP", "image/webp"),
    ("GIF", "image/gif"),
    ("HEIF", "image/heif"),
    ("AVIF", "image/avif"),
    ("BMP", "image/bmp"),
    ("TIFF", "image/tiff"),
)


@dataclass(frozen=True)
class ReceivedImage:
    """An image the client sent; the server forwards it with the declared MIME and never sniffs."""

    label: str
    declared_mime: str
    data: bytes
    sniffed: str | None  # Pillow format name, None when Pillow cannot read the bytes

    @property
    def mismatch(self) -> bool:
        return self.sniffed is not None and sniffed_mime(self.sniffed) != self.declared_mime


@dataclass(frozen=True)
class FormPart:
    """One multipart field; `content_type` is None when the part declared none (the server then guesses)."""

    name: str
    content_type: str | None
    filename: str | None
    data: bytes


def sniffed_mime(fmt: str) -> str:
    return dict(SNIFFED_MIME).get(fmt) or Image.MIME.get(fmt, f"image/{fmt.lower()}")


def sniff_format(data: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt: str | None = im.format
            return fmt
    except Exception:
        return None


def parse_json_body(content_type: str | None, raw: bytes) -> tuple[Any, Reply | None]:
    """axum's `Json` extractor: 415 unless the type is JSON, 400 on bad JSON; returns (value, error)."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if not (mime == APPLICATION_JSON or (mime.startswith("application/") and mime.endswith("+json"))):
        return None, plain(415, "Expected request with `Content-Type: application/json`")
    try:
        return json.loads(raw.decode("utf-8")), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, plain(400, f"Failed to parse the request body as JSON: {exc}")


def parse_multipart(content_type: str | None, raw: bytes) -> list[FormPart] | Reply:
    """Split a multipart/form-data body with the stdlib email parser."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime != "multipart/form-data" or "boundary=" not in (content_type or ""):
        return plain(400, "Invalid `boundary` for `multipart/form-data` request")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        return plain(400, "Multipart error: failed to parse the multipart body")
    parts: list[FormPart] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            return plain(400, "Multipart error: a part has no field name")
        payload = part.get_payload(decode=True)
        declared = part.get("Content-Type")
        parts.append(
            FormPart(
                name=name,
                content_type=declared.split(";", 1)[0].strip().lower() if declared else None,
                filename=part.get_filename(),
                data=payload if isinstance(payload, bytes) else b"",
            )
        )
    return parts


@dataclass(frozen=True)
class EditForm:
    """The edits form split the way the server reads it: text fields, then images in upstream order."""

    texts: dict[str, str]
    images: tuple[ReceivedImage, ...]


def _input_image(part: FormPart, default_mime: str) -> ReceivedImage:
    return ReceivedImage(part.name, part.content_type or default_mime, part.data, sniff_format(part.data))


def split_edit_form(parts: Sequence[FormPart]) -> EditForm:
    """A repeated `image` replaces the previous one; other `image*` fields (not image_size) are references."""
    texts: dict[str, str] = {}
    main: ReceivedImage | None = None
    mask: ReceivedImage | None = None
    references: list[ReceivedImage] = []
    for part in parts:
        if part.name == "image":
            main = _input_image(part, "image/png")
        elif part.name == "mask":
            mask = _input_image(part, "image/png")
        elif part.name.startswith("image") and part.name != "image_size":
            references.append(_input_image(part, "image/jpeg"))
        else:
            texts[part.name] = part.data.decode("utf-8", "replace")
    images = tuple(image for image in (main, mask, *references) if image is not None)
    return EditForm(texts, images)
