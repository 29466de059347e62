"""The fault table: every way the emulator can misbehave, one row each.

A row says everything about a fault: its stable name (`429-retry-delay`, `reset-during`, `gzip-bomb`, ...),
a line of description, what a good client does about it, whether it hits image requests or `/v1/models`,
its optional numeric argument (`slow:30`, `trickle:0.5`) and its behaviour: a function from the request it
hits (and, for a late fault, the server's own answer) to the answer sent. The parser, `image-gen emulator
--list-faults` and `--help`, the control endpoint, the injection and the README's fault table all follow
this table; the bytes the behaviours send are built in tricks.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..upstream import ALL_EXHAUSTED_BODY, NO_IMAGES, NO_QUOTA, PROXY_DISABLED
from . import tricks
from .replies import Reply, empty, json_reply, plain
from .rules import NOT_FOUND_MESSAGE
from .tricks import CAPACITY_503, GOOGLE_429, SPA_PAGE, VALIDATION_403, Behaviour, png

IMAGES, MODELS = "images", "models"  # what a fault hits: POSTs to the image routes, or GET /v1/models
# What a good client does: retry (with backoff), retry-once, try the other model, take the last picture,
# accept (the answer is usable; cope with its form), or stop (with the documented exit code).
RECOVERIES = ("retry", "retry-once", "other-model", "take-last", "accept", "stop")


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    recovery: str  # one of RECOVERIES
    act: Behaviour
    late: bool = False  # changes the server's own answer instead of replacing it
    default: float | None = None  # default argument
    transient: bool = False  # what a healthy but busy real server produces: the default random pool
    target: str = IMAGES


_MODEL_MISSING = {"error": {"message": NOT_FOUND_MESSAGE, "type": "upstream_error", "code": 404}}
_ERROR_429 = {
    "error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}
}
_F = Fault


def _bomb(name: str, status: int, encoding: str, recovery: str) -> Fault:
    """A `status` answer whose `encoding`-compressed body expands to N MiB of zeros."""
    return Fault(
        name,
        f"{status} with a {encoding} body that expands to N MiB of zeros (MiB)",
        recovery,
        lambda hit: tricks.bomb_reply(status, encoding, tricks.mib(hit)),
        default=1024,
    )


CATALOGUE: dict[str, Fault] = {
    f.name: f
    for f in (
        # --- what the real proxy does when it is busy: the default random pool ---
        _F(
            "429-retry-delay",
            "429, plain text with Google's JSON and retryDelay (s)",
            "retry",
            lambda hit: plain(429, GOOGLE_429.format(delay=f"{hit.value:g}")),
            default=1.17,
            transient=True,
        ),
        _F(
            "429-retry-after",
            "429 with a Retry-After header (s)",
            "retry",
            lambda hit: Reply(429, "Too Many Requests", headers={"Retry-After": f"{hit.value:g}"}),
            default=1,
            transient=True,
        ),
        _F(
            "429-exhausted",
            "429 All accounts exhausted",
            "retry",
            lambda hit: plain(429, ALL_EXHAUSTED_BODY),
            transient=True,
        ),
        _F(
            "503-capacity",
            "503 MODEL_CAPACITY_EXHAUSTED",
            "retry",
            lambda hit: plain(503, CAPACITY_503),
            transient=True,
        ),
        _F(
            "500",
            "500 Internal error encountered.",
            "retry",
            lambda hit: plain(500, "Internal error encountered."),
            transient=True,
        ),
        _F(
            "reset-before",
            "connection reset before any answer",
            "retry",
            lambda hit: Reply(200, reset="before"),
            transient=True,
        ),
        _F(
            "reset-during",
            "connection reset in the middle of the body",
            "retry",
            tricks.late(lambda reply, hit: replace(reply, reset="during")),
            late=True,
            transient=True,
        ),
        # --- what the real proxy says when something is wrong ---
        _F(
            "truncated-json",
            "200 with the JSON body cut in half",
            "retry-once",
            tricks.late(tricks.truncated),
            late=True,
        ),
        _F(
            "502-no-image",
            "502 No images generated (usually a silent safety block)",
            "retry-once",
            lambda hit: plain(502, NO_IMAGES),
        ),
        _F("empty-data", "200 with no picture in it (data: [])", "retry-once", lambda hit: hit.answer([])),
        _F(
            "partial",
            "200 with one picture fewer than asked",
            "retry-once",
            tricks.late(lambda reply, hit: hit.answer((hit.pictures or [])[:-1]), pictures=True),
            late=True,
        ),
        _F(
            "content-filter",
            "200 chat answer, text only, finish_reason content_filter",
            "stop",
            tricks.content_filter,
        ),
        _F(
            "drafts",
            "two draft pictures before the final one",
            "take-last",
            tricks.late(
                lambda reply, hit: hit.answer(
                    [tricks.draft_picture(), tricks.draft_picture(), *(hit.pictures or [])]
                ),
                pictures=True,
            ),
            late=True,
        ),
        _F(
            "slow",
            "the answer comes after a delay (s)",
            "stop",
            tricks.DELAYED,
            late=True,
            default=30,
        ),
        _F(
            "503-disabled",
            "503 Proxy service is currently disabled",
            "stop",
            lambda hit: plain(503, PROXY_DISABLED),
        ),
        _F(
            "502-no-quota",
            "502 No accounts available with quota for model",
            "other-model",
            lambda hit: plain(502, f"{NO_QUOTA}: {hit.model}"),
        ),
        _F("401", "401 with an empty body", "stop", lambda hit: empty(401)),
        _F(
            "403-validation",
            "403 VALIDATION_REQUIRED (account needs verification)",
            "stop",
            lambda hit: plain(403, VALIDATION_403),
        ),
        _F(
            "404-model",
            "404 JSON Requested entity was not found (model missing)",
            "other-model",
            lambda hit: json_reply(404, _MODEL_MISSING),
        ),
        _F("413", "413 length limit exceeded", "stop", lambda hit: plain(413, "length limit exceeded")),
        _F(
            "html",
            "200 with an HTML page",
            "stop",
            lambda hit: Reply(200, SPA_PAGE, content_type="text/html; charset=utf-8"),
        ),
        _F(
            "bad-base64",
            "200 with base64 that is not a picture",
            "retry-once",
            lambda hit: hit.answer([(bytes(range(256)) * 64, "image/png")]),
        ),
        _F(
            "corrupt-png",
            "200 with a truncated PNG",
            "retry-once",
            lambda hit: hit.answer([(png(256, 256)[:-600], "image/png")]),
        ),
        _F(
            "bomb",
            "200 with a PNG declaring 50000x50000 pixels",
            "stop",
            lambda hit: hit.answer([(png(50_000, 50_000, rows=1), "image/png")]),
        ),
        _F(
            "huge",
            "200 with a body of N MB, streamed (MB)",
            "stop",
            lambda hit: tricks.huge_reply(int((hit.value or 500) * 1024 * 1024)),
            default=500,
        ),
        # --- hostile servers and networks: the client must end in time, in bounded memory, unharmed ---
        _F(
            "trickle",
            "the whole answer dribbled, one byte every N seconds (s)",
            "stop",
            tricks.late(lambda reply, hit: replace(reply, pace=hit.value or 1.0), any_status=True),
            late=True,
            default=1,
        ),
        _F(
            "redirect-loop",
            f"302 to {tricks.LOOP_PATH}, which redirects to itself for ever",
            "stop",
            lambda hit: tricks.helper_reply(tricks.LOOP_PATH) or empty(302),
        ),
        _F(
            "hang-download",
            "200 with a picture URL that answers after N seconds (s)",
            "stop",
            tricks.hang_url,
            default=600,
        ),
        _F(
            "file-url",
            "200 with a file: URL for the picture",
            "stop",
            lambda hit: tricks.url_answer("file:///etc/passwd"),
        ),
        _bomb("gzip-bomb", 200, "gzip", "stop"),
        _bomb("deflate-bomb", 200, "deflate", "stop"),
        _bomb("500-gzip-bomb", 500, "gzip", "retry"),
        _F(
            "lying-encoding",
            "200 labelled Content-Encoding: gzip that is not gzip",
            "retry-once",
            lambda hit: Reply(
                200, b'{"data": []}', headers={"Content-Encoding": "gzip"}, content_type="application/json"
            ),
        ),
        _F(
            "error-cut-short",
            "401 declaring 5000 bytes, closed after 7",
            "stop",
            lambda hit: Reply(401, "bad key", length=5000),
        ),
        _F(
            "wrong-shape",
            '200 with {"choices": 5, "data": 5}',
            "retry-once",
            lambda hit: json_reply(200, {"choices": 5, "data": 5}),
        ),
        _F(
            "models-wrong-shape",
            '/v1/models answers 200 {"data": 5}',
            "accept",
            lambda hit: json_reply(200, {"object": "list", "data": 5}),
            target=MODELS,
        ),
        _F(
            "models-slow",
            "the /v1/models answer comes after a delay (s)",
            "stop",
            tricks.DELAYED,
            late=True,
            default=30,
            target=MODELS,
        ),
        _F(
            "nested-json",
            "200 with JSON nested 100 000 deep",
            "retry-once",
            lambda hit: Reply(200, tricks.nested_json(), content_type="application/json"),
        ),
        _F(
            "markdown-bait",
            "200 chat answer with 400 KB of '![' (regex bait)",
            "retry-once",
            lambda hit: json_reply(200, tricks.markdown_bait()),
        ),
        _F(
            "error-in-200",
            '200 carrying {"error": {"code": 429}}',
            "retry",
            lambda hit: json_reply(200, _ERROR_429),
        ),
        _F(
            "429-zero-wait",
            "429 with Retry-After: 0 and a retryDelay of 0s",
            "retry",
            lambda hit: Reply(429, GOOGLE_429.format(delay="0"), headers={"Retry-After": "0"}),
        ),
        _F(
            "key-echo",
            "401 echoing the key presented (raw, URL, base64, JSON)",
            "stop",
            lambda hit: plain(401, tricks.key_echo(hit.request.key())),
        ),
        _F(
            "terminal-escapes",
            "400 whose words hold terminal escape sequences",
            "stop",
            lambda hit: plain(400, tricks.ESCAPES),
        ),
        # --- pictures in awkward forms ---
        _F(
            "rotated",
            "the picture stored sideways with EXIF orientation 6",
            "accept",
            tricks.reshaped(tricks.rotated),
            late=True,
        ),
        _F("cmyk", "the picture as a CMYK JPEG", "accept", tricks.reshaped(tricks.cmyk), late=True),
        _F(
            "16-bit",
            "the picture as 16-bit grey PNG",
            "accept",
            tricks.reshaped(tricks.sixteen_bit),
            late=True,
        ),
        _F(
            "animated",
            "the picture as the first frame of an animated GIF",
            "accept",
            tricks.reshaped(tricks.animated),
            late=True,
        ),
        _F(
            "transparent",
            "the picture with every pixel fully transparent",
            "accept",
            tricks.reshaped(tricks.transparent),
            late=True,
        ),
        _F(
            "degenerate",
            "200 with a 1x1 picture",
            "retry-once",
            lambda hit: hit.answer([(png(1, 1), "image/png")]),
        ),
    )
}
# Faults a healthy-but-busy real server produces: the random pool by default.
TRANSIENT = tuple(name for name, fault in CATALOGUE.items() if fault.transient)


def listing() -> list[str]:
    """One line per fault, for `image-gen emulator --list-faults`: name, what a client does, description."""
    lines = []
    for fault in CATALOGUE.values():
        default = f" (default {fault.default:g})" if fault.default is not None else ""
        where = " [on /v1/models]" if fault.target == MODELS else ""
        lines.append(f"{fault.name:18} {fault.recovery:12} {fault.summary}{default}{where}")
    return lines
