"""The HTTP requests we send, per server kind and route. Pure: builds descriptions, sends nothing.

Antigravity rewrites prompts unless `style` is something other than vivid/natural, reads the tier from
`image_size` (`imageSize` on chat), and takes ratios as `size` strings; CLIProxyAPI only draws Gemini
pictures on chat and wants `image_config`; OpenAI itself wants its own sizes. Each gets only what it reads.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .geometry import Plan
from .upstream import ANTIGRAVITY, CHAT, CLIPROXYAPI, IMAGES, OPENAI

if TYPE_CHECKING:  # only for annotations: importing Pillow here would slow every start-up
    from .images import Upload

# OpenAI's own image sizes, for servers that only speak OpenAI.
_OPENAI_SIZES = {(1, 1): "1024x1024", (3, 2): "1536x1024", (2, 3): "1024x1536"}


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


def _openai_size(plan: Plan) -> str:
    ratio = plan.request_ratio.value
    best = min(_OPENAI_SIZES, key=lambda r: abs(r[0] / r[1] - ratio))
    return _OPENAI_SIZES[best]


def build_call(
    route: str, kind: str, prompt: str, model: str, plan: Plan, inputs: tuple[Upload, ...] = ()
) -> Call:
    """The request that asks `kind` of server for one picture by `route`."""
    ratio, tier = str(plan.request_ratio), plan.tier
    if route == CHAT:
        return _chat_call(kind, prompt, model, ratio, tier, inputs)
    if inputs:
        return _edits_call(kind, prompt, model, ratio, tier, inputs, plan)
    body: dict[str, Any] = {"model": model, "prompt": prompt, "n": 1}
    if kind == OPENAI:
        body["size"] = _openai_size(plan)
    else:
        # style "none": Antigravity appends style text to the prompt for vivid (its default) and natural.
        body.update(size=ratio, image_size=tier, response_format="b64_json", style="none")
    return Call(IMAGES, "/images/generations", json=body)


def _edits_call(
    kind: str, prompt: str, model: str, ratio: str, tier: str, inputs: tuple[Upload, ...], plan: Plan
) -> Call:
    form = {"model": model, "prompt": prompt, "n": "1"}
    if kind == OPENAI:
        form["size"] = _openai_size(plan)
        names = ["image[]"] * len(inputs)
    else:
        # Antigravity: a repeated `image` overwrites; references go as image1, image2, ...
        form.update(aspect_ratio=ratio, image_size=tier, response_format="b64_json")
        names = ["image", *(f"image{i}" for i in range(1, len(inputs)))]
    files = tuple(
        FilePart(name, img.filename, img.data, img.mime) for name, img in zip(names, inputs, strict=True)
    )
    return Call(IMAGES, "/images/edits", form=form, files=files)


def _chat_call(kind: str, prompt: str, model: str, ratio: str, tier: str, inputs: tuple[Upload, ...]) -> Call:
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
    if kind in (ANTIGRAVITY, OPENAI):
        body.update(size=ratio, imageSize=tier)
    if kind in (CLIPROXYAPI, OPENAI):
        body.update(modalities=["image", "text"], image_config={"aspect_ratio": ratio, "image_size": tier})
    return Call(CHAT, "/chat/completions", json=body)
