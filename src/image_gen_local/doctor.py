"""`image-gen doctor`: can generation work here? One line per check, exit 0 only if it can.

The route checks send requests the server rejects before generating anything (no prompt), so they cost
no quota: a 400/422 proves the route exists, a 404/405 proves it does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from . import files
from .answers import AnswerError, parse_json
from .config import Settings
from .errors import ExitCode, ImageGenError
from .failures import classify, looks_like_html
from .protocol import Call, FilePart
from .servers import (
    ServerInfo,
    answers_litellm_health,
    check_model,
    detect_kind,
    image_model_ids,
    model_ids,
)
from .transport import HttpAnswer, Transport, TransportFailure
from .upstream import EMULATOR_HEADER, LITELLM, NOT_ON_IMAGES_API, OPENAI

# How doctor names each kind of server.
_NAMES = {
    "antigravity": "Antigravity Tools",
    "cliproxyapi": "CLIProxyAPI",
    LITELLM: "a LiteLLM gateway (it forwards to the servers in its configuration)",
    OPENAI: "an OpenAI-compatible server",
}

TIMEOUT = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    exit_code: ExitCode = ExitCode.OK
    warning: bool = False

    def line(self) -> str:
        mark = "ok" if self.ok and not self.warning else ("warn" if self.ok else "FAIL")
        return f"[{mark}] {self.name}: {self.detail}"


def route_check(name: str, answer: HttpAnswer | None, failure: str | None) -> Check:
    """Judge a zero-cost probe of one route (pure)."""
    if answer is None:
        return Check(name, False, failure or "no answer", ExitCode.UNREACHABLE)
    if answer.status in (404, 405) or looks_like_html(answer.text[:300]):
        return Check(name, False, f"not offered (HTTP {answer.status})", ExitCode.UNREACHABLE)
    if answer.status in (401, 403):
        return Check(name, False, f"refused (HTTP {answer.status})", ExitCode.AUTH)
    if NOT_ON_IMAGES_API in answer.text:
        return Check(name, True, "offered, but not for Gemini models (chat will be used)", warning=True)
    return Check(name, True, f"offered (answered HTTP {answer.status} to an empty request)")


def run_checks(settings: Settings, emit: Callable[[str], None]) -> int:
    checks: list[Check] = []

    def record(check: Check) -> None:
        checks.append(check)
        emit(check.line())

    transport = Transport(settings.base_url, settings.api_key)
    deadline = time.monotonic() + settings.timeout  # --timeout bounds doctor too, all checks together

    def left() -> float:
        return min(TIMEOUT, deadline - time.monotonic())

    try:
        started = time.monotonic()
        try:
            models = transport.get("/models", left())
        except TransportFailure as exc:
            record(Check("server", False, exc.failure.line(), exc.failure.exit_code))
            models = None
        if models is not None:
            _judge_models(settings, transport, models, time.monotonic() - started, record)
        if all(c.ok for c in checks):
            for name, call in _probes(settings.model):
                answer, failure = _probe(transport, call, left())
                record(route_check(f"{name} ({call.path})", answer, failure))
    finally:
        transport.close()
    try:
        folder = files.prepare_dir(settings.output_dir)
        record(Check("output folder", True, f"{folder} is writable"))
    except ImageGenError as exc:
        record(Check("output folder", False, str(exc), exc.exit_code))

    failed = [c for c in checks if not c.ok]
    routes_ok = any(c.ok for c in checks if c.name.endswith(("/images/generations)", "/chat/completions)")))
    if failed and not (
        routes_ok and all(c.name.startswith(("images API", "edits API", "chat API")) for c in failed)
    ):
        return int(failed[0].exit_code)
    if not routes_ok:
        return int(ExitCode.UNREACHABLE)
    return int(ExitCode.OK)


def _judge_models(
    settings: Settings,
    transport: Transport,
    answer: HttpAnswer,
    seconds: float,
    record: Callable[[Check], None],
) -> None:
    where = settings.base_url
    if answer.status != 200:
        failure = classify(answer.status, answer.text, answer.headers)
        if failure.exit_code is ExitCode.AUTH:  # 401/403, or a gateway's own words for a key it refuses
            gateway = ": " + _NAMES[LITELLM] if answers_litellm_health(transport, where, TIMEOUT) else ""
            record(Check("server", True, f"reachable at {where} ({seconds * 1000:.0f} ms){gateway}"))
            record(Check("API key", False, failure.line(), failure.exit_code))
        else:
            record(Check("server", False, f"{where}/models: {failure.line()}", ExitCode.UNREACHABLE))
        return
    try:
        data = parse_json(answer.body)
    except AnswerError as exc:
        record(Check("server", False, f"{where}/models: {exc}; check --base-url", ExitCode.UNREACHABLE))
        return
    kind = detect_kind(where, data, answer.headers)
    if kind == OPENAI and answers_litellm_health(transport, where, TIMEOUT):
        kind = LITELLM
    name = _NAMES.get(kind, kind)
    if EMULATOR_HEADER.lower() in answer.headers:
        name = f"the image-gen-local emulator, which follows {name}'s rules: its pictures are SYNTHETIC"
    record(Check("server", True, f"reachable at {where} ({seconds * 1000:.0f} ms): {name} ({kind})"))
    record(Check("API key", True, "accepted" if settings.api_key else "none needed"))
    image_models = image_model_ids(data)
    listed = ", ".join(image_models)
    try:
        model, note = check_model(settings.model, ServerInfo(kind, model_ids(data), 0.0, image_models))
    except ImageGenError as exc:
        record(Check("image models", False, str(exc), exc.exit_code))
        return
    if note:
        record(Check("image models", True, f"{listed}; {note}", warning=True))
    elif not image_models:
        record(Check("image models", True, "none listed; generation may still work", warning=True))
    elif model in image_models:
        record(Check("image models", True, f"{listed}; using {model}"))
    else:
        record(Check("image models", True, f"{model} is not listed (listed: {listed})", warning=True))


def _probe(transport: Transport, call: Call, timeout: float) -> tuple[HttpAnswer | None, str | None]:
    try:
        return transport.send(call, timeout), None
    except TransportFailure as exc:
        return None, exc.failure.line()


def _probes(model: str) -> list[tuple[str, Call]]:
    """Requests each route refuses before generating anything: no prompt, so no quota is spent."""
    empty_file = (FilePart("probe", "probe.txt", b"", "text/plain"),)
    return [
        ("images API", Call("probe", "/images/generations", json={})),
        ("edits API", Call("probe", "/images/edits", form={"model": model}, files=empty_file)),
        ("chat API", Call("probe", "/chat/completions", json={})),
    ]
