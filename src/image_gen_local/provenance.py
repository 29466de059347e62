"""Every picture's recipe, carried inside the picture itself.

A picture outlives the command that made it: it is forwarded, renamed, converted. So what made it (the
prompt, the geometry asked and delivered, model, route, server, time spent, warnings, the input pictures'
names and SHA-256, our version, the time) travels in the file, where other tools look: the prompt as the
XMP `dc:description` with the IPTC digital source type saying an AI model made it, a plain description and
comment viewers show, and the whole recipe as JSON (a PNG text chunk; inside the XMP packet for JPEG and
WebP; a comment in a GIF). `image-gen show` reads it back from any copy.

A picture from the bundled emulator says it is synthetic in every one of those places. The server's key is
never part of a recipe, the server's address loses any user name, password or query, and a key of
`MIN_SCRUBBED_KEY` characters or more is scrubbed from everything else too (even the prompt).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import containers
from .failures import Redactor
from .version import __version__

RECIPE_FORMAT = "image-gen-local recipe 1"  # the first field of every recipe: what it is, which version
TOOL = f"image-gen-local {__version__}"
PNG_RECIPE_KEY = "image-gen-local"  # the PNG text chunk holding the recipe as JSON
GIF_RECIPE_PREFIX = "image-gen-local recipe: "
XMP_NAMESPACE = "urn:image-gen-local:recipe:1/"
SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_MEDIA = SOURCE_TYPES + "trainedAlgorithmicMedia"  # made by a trained AI model
ALGORITHMIC_MEDIA = SOURCE_TYPES + "algorithmicMedia"  # drawn by a program, no model (the emulator)
SYNTHETIC_TEXT = "SYNTHETIC test picture from the image-gen-local emulator, no AI model was used"
MIN_SCRUBBED_KEY = 8  # a shorter "key" (`tmp`) would mangle ordinary words
# Shortened descriptions and prompts to try, in turn, when a JPEG's one XMP segment (64 KiB) is too small:
# only prompts of many thousand characters need it. None keeps the text whole.
_FITS = ((None, None), (2000, None), (500, 16000), (500, 8000), (200, 2000), (100, 200))
_XML_UNSAFE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

Recipe = dict[str, Any]


@dataclass(frozen=True)
class Made:
    """What made one picture: the engine fills it, `as_recipe` gives the JSON every copy carries."""

    prompt: str
    requested: dict[str, Any]  # as the user said it: size, aspect_ratio, resolution, model
    asked: dict[str, Any] | None  # the geometry asked of the server
    received: dict[str, Any]  # what the server sent: width, height, format
    delivered: dict[str, Any]  # what was saved: width, height, format, and the local crop and resize
    model: str
    route: str
    server: str
    seconds: float
    retries: int
    warnings: list[str]
    inputs: list[dict[str, str]]  # name and sha256 of each input picture, in order
    synthetic: bool
    made: str  # ISO 8601 with the UTC offset

    def as_recipe(self, key: str | None = None) -> Recipe:
        fields = asdict(self)
        fields.update(server=public_url(self.server), seconds=round(self.seconds, 3))
        recipe: Recipe = {"format": RECIPE_FORMAT, "tool": TOOL, **fields}
        return scrub(recipe, key)


def public_url(url: str) -> str:
    """The server's address without a user name, password, query or fragment (any could be a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def scrub(recipe: Recipe, key: str | None) -> Recipe:
    """Every text made safe to store: the key (when long enough to be told apart) scrubbed, and characters
    that cannot be written as UTF-8 (lone surrogates from a mis-encoded argument) replaced."""
    redact = Redactor(key if key and len(key) >= MIN_SCRUBBED_KEY else None)

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value.encode("utf-8", "replace").decode("utf-8"))
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    cleaned: Recipe = clean(recipe)
    return cleaned


def description(recipe: Recipe) -> str:
    """What viewers show as the description: the prompt, or that the picture is synthetic and the prompt."""
    prompt = str(recipe.get("prompt", ""))
    return f"{SYNTHETIC_TEXT}. Prompt: {prompt}" if recipe.get("synthetic") else prompt


def credit(recipe: Recipe) -> str:
    """One line on how the picture was made, for comment fields."""
    if recipe.get("synthetic"):
        return f"{SYNTHETIC_TEXT} ({recipe.get('tool', TOOL)}, {recipe.get('made', '')})"
    model = recipe.get("model", "an AI model")
    return f"AI-generated by {model} through {recipe.get('tool', TOOL)}, {recipe.get('made', '')}"


def as_text(recipe: Recipe) -> str:
    return json.dumps(recipe, ensure_ascii=False, separators=(",", ":"))


def xmp_packet(recipe: Recipe, with_recipe: bool = True, limit: int | None = None) -> bytes:
    """The XMP packet: description, digital source type, creator tool and date, and the recipe itself.

    With `limit` (a JPEG segment), a very long prompt is shortened until it fits, and the recipe says so
    (`prompt_cut` holds the full length); the history keeps it whole. Raises ValueError if nothing fits.
    """
    for keep_description, keep_prompt in _FITS:
        shown = recipe
        if keep_prompt is not None and len(recipe.get("prompt", "")) > keep_prompt:
            shown = {**recipe, "prompt": recipe["prompt"][:keep_prompt], "prompt_cut": len(recipe["prompt"])}
        text = description(recipe)
        if keep_description is not None and len(text) > keep_description:
            text = text[:keep_description] + "…"
        packet = _packet(recipe, text, as_text(shown) if with_recipe else None)
        if limit is None or len(packet) <= limit:
            return packet
    raise ValueError("the recipe does not fit in the file")


def _xml(text: str) -> str:
    """Text as XML character data. (Written here: the standard library's `xml.sax.saxutils` brings in
    urllib.request and email, about 25 ms that `show` and the gallery, which never load the SDK, would pay
    for three replacements; the picture path has them from the SDK anyway.)"""
    text = _XML_UNSAFE.sub("\ufffd", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attribute(text: str) -> str:
    """Text as a double-quoted XML attribute value, white space kept as written."""
    escaped = _xml(text).replace('"', "&quot;")
    return '"' + escaped.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;") + '"'


def _packet(recipe: Recipe, text: str, recipe_text: str | None) -> bytes:
    source = ALGORITHMIC_MEDIA if recipe.get("synthetic") else TRAINED_MEDIA
    made = _attribute(_XML_UNSAFE.sub("", str(recipe.get("made", ""))))
    tool = _attribute(str(recipe.get("tool", TOOL)))
    body = f"<igl:recipe>{_xml(recipe_text)}</igl:recipe>" if recipe_text is not None else ""
    xml = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk={tool}>\n'
        f'<rdf:RDF xmlns:rdf="{_RDF}">\n'
        '<rdf:Description rdf:about=""\n'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        ' xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        f' xmlns:igl="{XMP_NAMESPACE}"\n'
        f" xmp:CreatorTool={tool}\n"
        f" xmp:CreateDate={made}\n"
        f' Iptc4xmpExt:DigitalSourceType="{source}">\n'
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{_xml(text)}</rdf:li></rdf:Alt>'
        f"</dc:description>\n{body}\n"
        "</rdf:Description>\n</rdf:RDF>\n</x:xmpmeta>\n"
        '<?xpacket end="r"?>'
    )
    return xml.encode("utf-8")


def labels(recipe: Recipe, fmt: str) -> containers.Labels:
    """The texts for a picture in `fmt` (PNG, JPEG, WEBP or GIF)."""
    if fmt == "PNG":  # the recipe in its own chunk; the XMP packet need not repeat it
        texts = {
            PNG_RECIPE_KEY: as_text(recipe),
            "Description": description(recipe),
            "Comment": credit(recipe),
        }
        return containers.Labels(texts, xmp_packet(recipe, with_recipe=False), ())
    if fmt == "GIF":  # no XMP: a comment for people, one for the recipe
        return containers.Labels({}, b"", (credit(recipe), GIF_RECIPE_PREFIX + as_text(recipe)))
    limit = containers.JPEG_XMP_MAX if fmt == "JPEG" else None
    return containers.Labels({}, xmp_packet(recipe, limit=limit), (credit(recipe),))


def label(data: bytes, recipe: Recipe) -> bytes:
    """The picture's bytes carrying its recipe; raises ValueError for a format that cannot carry one."""
    fmt = containers.sniff(data)
    if fmt is None:
        raise ValueError("this format cannot carry a recipe")
    return containers.embed(data, labels(recipe, fmt))


def read_recipe(data: bytes) -> Recipe | None:
    """The recipe a picture carries, from any place we write it; None when there is none.

    Raises ValueError when the bytes are not a PNG, JPEG, WebP or GIF picture at all.
    """
    found = containers.read(data)
    if found is None:
        raise ValueError("not a PNG, JPEG, WebP or GIF picture")
    if PNG_RECIPE_KEY in found.texts:
        return parse(found.texts[PNG_RECIPE_KEY])
    for comment in found.comments:
        if comment.startswith(GIF_RECIPE_PREFIX):
            return parse(comment[len(GIF_RECIPE_PREFIX) :])
    return recipe_from_xmp(found.xmp) if found.xmp else None


def parse(text: str) -> Recipe | None:
    """A recipe from its JSON, or None when the text is not one of ours."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if (
        isinstance(value, dict)
        and value.get("format") == RECIPE_FORMAT
        and isinstance(value.get("prompt"), str)
    ):
        return value
    return None


def recipe_from_xmp(packet: bytes) -> Recipe | None:
    """The recipe inside an XMP packet, whether written as an element or (by another tool) an attribute.

    A packet declaring a DTD or entities is not read at all: no entity is ever expanded.
    """
    import xml.etree.ElementTree as ElementTree  # reading recipes only: `show`, `again`, the gallery

    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        return None
    try:
        root = ElementTree.fromstring(packet.decode("utf-8", "replace"))
    except ElementTree.ParseError:
        return None
    name = f"{{{XMP_NAMESPACE}}}recipe"
    for element in root.iter():
        text = element.text if element.tag == name else element.get(name)
        if text:
            return parse(text)
    return None


def _size(part: Any) -> str:
    if not isinstance(part, dict):
        return "?"
    fmt = f" {part['format']}" if part.get("format") else ""
    return f"{part.get('width', '?')}x{part.get('height', '?')}{fmt}"


def recipe_rows(recipe: Recipe) -> list[tuple[str, str]]:
    """The recipe for a person: (name, value) per fact, only the facts it holds, tolerant of recipes written
    by other versions (`image-gen show`, the gallery)."""
    rows: list[tuple[str, str]] = []
    prompt = str(recipe.get("prompt", ""))
    rows += [("prompt", line) for line in (prompt.splitlines() or [""])]
    if recipe.get("prompt_cut"):
        rows.append(
            ("", f"(cut to fit the file: {recipe['prompt_cut']} characters in all; the history has it)")
        )
    if recipe.get("synthetic"):
        rows.append(("SYNTHETIC", "drawn by the image-gen-local emulator; no AI model was used"))
    rows.append(("made", f"{recipe.get('made', '?')} by {recipe.get('tool', '?')}"))
    rows.append(
        ("model", f"{recipe.get('model', '?')} via {recipe.get('route', '?')} at {recipe.get('server', '?')}")
    )
    rows.append(("requested", _requested(recipe.get("requested"))))
    asked = recipe.get("asked")
    if isinstance(asked, dict):
        tier = f" {asked['tier']}" if asked.get("tier") else ""
        rows.append(("asked", f"{asked.get('ratio', '?')}{tier} ({_size(asked)})"))
    rows.append(("received", _size(recipe.get("received"))))
    rows.append(("delivered", _delivered(recipe.get("delivered"))))
    rows.append(("time", f"{recipe.get('seconds', '?')} s, {recipe.get('retries', 0)} retries"))
    for item in recipe.get("inputs") or []:
        if isinstance(item, dict):
            rows.append(("input", f"{item.get('name', '?')} (sha256 {str(item.get('sha256', '?'))[:16]}…)"))
    rows += [("warning", str(w)) for w in recipe.get("warnings") or []]
    return rows


def _requested(requested: Any) -> str:
    if not isinstance(requested, dict):
        return "?"
    said = [f"--size {requested['size']}"] if requested.get("size") else []
    if requested.get("aspect_ratio"):
        said.append(f"--aspect-ratio {requested['aspect_ratio']}")
    said.append(f"--resolution {requested.get('resolution', '?')}")
    ratio = f" (ratio {requested['ratio']})" if requested.get("ratio") else ""
    return " ".join(said) + ratio


def _delivered(delivered: Any) -> str:
    if not isinstance(delivered, dict):
        return "?"
    changes = []
    if delivered.get("crop"):
        changes.append(f"cropped to box {tuple(delivered['crop'])}")
    if delivered.get("resize"):
        changes.append("resized")
    return _size(delivered) + (f" ({', then '.join(changes)} here)" if changes else "")
