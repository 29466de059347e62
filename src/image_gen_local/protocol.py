"""The HTTP requests we send, by model family, server kind and route. Pure: describes, sends nothing.

The geometry follows the model, not the server: a Gemini image model is asked for its own exact pixel size
for the ratio and tier (`size: "2752x1536"`), with the tier as `image_size` and the ratio where a field
exists for it, so every layer in between (Antigravity, a LiteLLM pass-through, LiteLLM's Gemini
translation) maps it exactly; OpenAI's own image models get OpenAI's three sizes. The rest follows the
server: Antigravity rewrites prompts unless `style` is something other than vivid/natural (LiteLLM drops
`style`, so through LiteLLM text-to-image goes by chat, which no one rewrites); CLIProxyAPI draws Gemini
pictures only on chat and wants `image_config`; edits go as `image[]` parts except to Antigravity itself
(a gateway turns a part named `image1` into a text field).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .geometry import (
    TIER_TOLERANCE,
    Plan,
    Ratio,
    cropped_size,
    describe_ratio,
    has_ratio,
    nearest_supported,
    tier_of,
)
from .upstream import (
    ANTIGRAVITY,
    CHAT,
    CLIPROXYAPI,
    GEMINI,
    IMAGES,
    LITELLM,
    OPENAI_IMAGES,
    OPENAI_SIZES,
    UNKNOWN,
    is_gemini_image,
    is_openai_image,
)

if TYPE_CHECKING:  # only for annotations: importing Pillow here would slow every start-up
    from .images import Upload

# Kinds whose models are all Gemini's, whatever their names.
_GEMINI_SERVERS = (ANTIGRAVITY, CLIPROXYAPI, UNKNOWN)


@dataclass(frozen=True)
class Asked:
    """The geometry a request asks for, and why: what the answer is compared with."""

    family: str  # GEMINI or OPENAI_IMAGES
    ratio: Ratio  # the ratio asked for
    size: tuple[int, int]  # the pixel size the model should send back
    tier: str | None  # the tier asked for (Gemini), None for OpenAI's sizes
    why: str

    @property
    def pixels(self) -> str:
        return f"{self.size[0]}x{self.size[1]}"


def asked_geometry(model: str, kind: str, plan: Plan) -> Asked:
    """Gemini's geometry for Gemini image models (by name, or on a server that serves only Gemini),
    OpenAI's three sizes for OpenAI's models and for unknown names on other servers (pure)."""
    if is_openai_image(model):
        family, why = OPENAI_IMAGES, f"{model} is an OpenAI image model"
    elif is_gemini_image(model):
        family, why = GEMINI, f"{model} is a Gemini image model"
    elif kind in _GEMINI_SERVERS:
        family, why = GEMINI, f"a {kind} server serves Gemini image models"
    else:
        family, why = OPENAI_IMAGES, f"{model} is not a Gemini image model and the server is {kind}"
    if family == GEMINI:
        return Asked(GEMINI, plan.request_ratio, plan.expected_size, plan.tier, why)
    ratio = plan.request_ratio.value
    best = min(OPENAI_SIZES, key=lambda r: abs(r[0] / r[1] - ratio))
    return Asked(OPENAI_IMAGES, Ratio(*best), OPENAI_SIZES[best], None, why)


def routes_for(kind: str, model: str, has_inputs: bool) -> tuple[list[str], str]:
    """The routes to try in order, and why (pure)."""
    if kind == CLIPROXYAPI:
        return [CHAT], "CLIProxyAPI draws Gemini pictures only on chat"
    if kind == LITELLM and not has_inputs and not is_openai_image(model):
        why = (
            "LiteLLM drops `style`, so behind it Antigravity would add its style words to the prompt on "
            "the images API; chat keeps the prompt verbatim"
        )
        return [CHAT, IMAGES], why
    return [IMAGES, CHAT], "the images API first, chat if it is missing"


@dataclass(frozen=True)
class FilePart:
    field: str
    filename: str
    data: bytes
    mime: str


@dataclass(frozen=True)
class Call:
    """One request: where it goes and what it carries (JSON, or multipart form fields and files)."""

    route: str
    path: str
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None
    files: tuple[FilePart, ...] = field(default_factory=tuple)
    asked: Asked | None = None

    def note(self) -> str:
        """What the geometry fields say, and why (for -v)."""
        if self.asked is None:
            return ""
        a = self.asked
        tier = f", tier {a.tier}" if a.tier else ""
        return f"asked {a.pixels} (ratio {a.ratio}{tier}) because {a.why}"

    def describe(self, base_url: str, has_key: bool) -> dict[str, Any]:
        """A printable view for --dry-run: the key redacted, picture bytes summarised."""
        out: dict[str, Any] = {"method": "POST", "url": base_url.rstrip("/") + self.path, "route": self.route}
        out["headers"] = {"Authorization": "Bearer ***"} if has_key else {}
        if self.json is not None:
            out["json"] = _summarise(self.json)
        if self.form is not None:
            out["form"] = dict(self.form)
            out["files"] = [
                {"field": f.field, "filename": f.filename, "content_type": f.mime, "bytes": len(f.data)}
                for f in self.files
            ]
        return out


def _summarise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _summarise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_summarise(v) for v in value]
    if isinstance(value, str) and value.startswith("data:") and len(value) > 200:
        head = value.split(",", 1)[0]
        return f"<{head},… {len(value)} characters>"
    return value


def data_url(image: Upload) -> str:
    return f"data:{image.mime};base64,{base64.b64encode(image.data).decode('ascii')}"


def build_call(
    route: str, kind: str, prompt: str, model: str, plan: Plan, inputs: tuple[Upload, ...] = ()
) -> Call:
    """The request that asks `kind` of server for one picture of `model` by `route`."""
    asked = asked_geometry(model, kind, plan)
    if route == CHAT:
        return _chat_call(kind, prompt, model, asked, inputs)
    if inputs:
        return _edits_call(kind, prompt, model, asked, inputs)
    body: dict[str, Any] = {"model": model, "prompt": prompt, "n": 1, "size": asked.pixels}
    if asked.family == GEMINI:
        body["image_size"] = asked.tier
        if kind != LITELLM:  # LiteLLM drops both (and refuses them without `drop_params`)
            # style "none": Antigravity appends style text to the prompt for vivid (its default) and natural.
            body.update(response_format="b64_json", style="none")
    return Call(IMAGES, "/images/generations", json=body, asked=asked)


def _edits_call(kind: str, prompt: str, model: str, asked: Asked, inputs: tuple[Upload, ...]) -> Call:
    form = {"model": model, "prompt": prompt, "n": "1", "size": asked.pixels}
    if asked.family == GEMINI:
        form.update(aspect_ratio=str(asked.ratio), image_size=str(asked.tier))
        if kind != LITELLM:
            form["response_format"] = "b64_json"
    if kind == ANTIGRAVITY:
        # Antigravity: a repeated `image` overwrites; references go as image1, image2, ...
        names = ["image", *(f"image{i}" for i in range(1, len(inputs)))]
    else:
        # Every gateway keeps `image[]` parts (LiteLLM turns any other name into a text field); Antigravity
        # reads them as references in order, so this form is also right when the kind is unknown.
        names = ["image[]"] * len(inputs)
    files = tuple(
        FilePart(name, img.filename, img.data, img.mime) for name, img in zip(names, inputs, strict=True)
    )
    return Call(IMAGES, "/images/edits", form=form, files=files, asked=asked)


def _chat_call(kind: str, prompt: str, model: str, asked: Asked, inputs: tuple[Upload, ...]) -> Call:
    content: str | list[dict[str, Any]] = prompt
    if inputs:
        content = [{"type": "text", "text": prompt}] + [
            {"type": "image_url", "image_url": {"url": data_url(img)}} for img in inputs
        ]
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "stream": False,
    }
    ratio, tier = str(asked.ratio), asked.tier or "1K"
    if kind != CLIPROXYAPI:  # Antigravity reads these; gateways pass them on
        body.update(size=ratio, imageSize=tier)
    if kind != ANTIGRAVITY:  # CLIProxyAPI and LiteLLM's Gemini translation read these
        body.update(modalities=["image", "text"], image_config={"aspect_ratio": ratio, "image_size": tier})
    return Call(CHAT, "/chat/completions", json=body, asked=asked)


def geometry_warnings(plan: Plan, asked: Asked | None, actual: tuple[int, int]) -> list[str]:
    """Every way the answer differs from what was asked, ratio and size both; and, apart, where the client
    itself asked for other than the user wanted, so the server is never blamed for the client's choice."""
    sent = asked or Asked(GEMINI, plan.request_ratio, plan.expected_size, plan.tier, "")
    w, h = actual
    notes: list[str] = []
    if sent.ratio != plan.request_ratio:
        notes.append(
            f"{sent.why}, which takes only a few sizes: asked {sent.pixels} for {plan.target_ratio}, "
            f"cropped locally to {plan.target_ratio}"
        )
    if not has_ratio(actual, sent.ratio):
        notes.append(
            f"the server ignored aspect ratio {sent.ratio} (asked {sent.pixels}) and sent {w}x{h} "
            f"({describe_ratio(actual)}); cropped locally to {plan.target_ratio}"
        )
    size_note = _size_difference(sent, actual)
    if size_note:
        notes.append(size_note)
    if plan.final_size:
        cw, ch = cropped_size(actual, plan.target_ratio)
        if cw < plan.final_size[0] or ch < plan.final_size[1]:
            notes.append(
                f"upscaled {cw}x{ch} to {plan.final_size[0]}x{plan.final_size[1]}: the server sent less"
            )
    return notes


def _size_difference(sent: Asked, actual: tuple[int, int]) -> str | None:
    """The tier (Gemini) or the size (OpenAI) of the answer, when not the one asked for."""
    w, h = actual
    if sent.tier is None:
        far = abs(max(actual) - max(sent.size)) > max(sent.size) * TIER_TOLERANCE
        return f"the server sent {w}x{h}, not the {sent.pixels} asked for" if far else None
    near = nearest_supported(Ratio.of(w, h))
    got = tier_of(actual, near) if has_ratio(actual, near) else None
    if got == sent.tier:
        return None
    what = f"a {got} picture" if got else f"{w}x{h}, no Gemini size"
    return f"the server ignored resolution {sent.tier} (asked {sent.pixels}) and sent {w}x{h} ({what})"
