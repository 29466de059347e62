"""Delivering one verified picture: fitted to what was asked, labelled with its recipe, saved, recorded.

The picture is cropped and resized to the requested geometry, converted when `-o` names another format,
then its recipe is written into its bytes (the last step before saving, so it survives every local change),
saved without ever overwriting, and recorded in the history. Labelling and recording never cost the
picture: a format that cannot carry a recipe is saved with a warning, and a history that cannot be written
is said once on stderr.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import files, geometry, naming, protocol, provenance
from .config import Settings
from .history import Recorder
from .request import Prepared, SavedImage

if TYPE_CHECKING:
    from .images import Picture
    from .protocol import Call


class Delivery:
    """Saves pictures for one generator: where, with which recipe, recorded where."""

    def __init__(
        self,
        settings: Settings,
        warn: Callable[[str], None],
        alert: Callable[[str], None],
        clock: Callable[[], datetime],
        saving: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self.settings = settings
        self.warn = warn
        self.clock = clock
        self.saving = saving  # around each save: refused once the run was interrupted, waited for by a stop
        self.record = Recorder(settings.history_file, alert) if settings.history else None

    def close(self) -> None:
        if self.record is not None:
            self.record.close()

    def deliver(
        self,
        prepared: Prepared,
        index: int,
        picture: Picture,
        call: Call,
        started: float,
        retries: int,
        warnings: list[str],
        synthetic: bool,
    ) -> SavedImage:
        final, box, resize = self._fitted(prepared, picture, call, warnings)
        model = str((call.json or call.form or {}).get("model", self.settings.model))
        seconds = time.monotonic() - started
        made = provenance.Made(
            prompt=prepared.prompt,
            requested=_requested(prepared, self.settings.model),
            asked=_asked(call),
            received={"width": picture.width, "height": picture.height, "format": picture.format},
            delivered={
                "width": final.width,
                "height": final.height,
                "format": final.format,
                "crop": list(box) if box else None,
                "resize": list(resize) if resize else None,
            },
            model=model,
            route=call.route,
            server=self.settings.base_url,
            seconds=seconds,
            retries=retries,
            warnings=list(warnings),
            inputs=[{"name": upload.source.name, "sha256": upload.sha256} for upload in prepared.inputs],
            synthetic=synthetic,
            made=self.clock().astimezone().isoformat(timespec="seconds"),
        )
        recipe = made.as_recipe(self.settings.api_key)
        data = self._labelled(final.data, recipe, warnings)
        with self.saving():  # an interrupted run starts no new file and waits for this one
            path = self._save(data, prepared, index, final.ext)
        saved = SavedImage(
            path, final.width, final.height, final.mime, model, call.route, seconds, retries, warnings, recipe
        )
        if self.record is not None:
            saved.id = self.record(path, _with_input_paths(recipe, prepared))
        return saved

    def _fitted(
        self, prepared: Prepared, picture: Picture, call: Call, warnings: list[str]
    ) -> tuple[Picture, tuple[int, int, int, int] | None, tuple[int, int] | None]:
        """The picture cropped and resized to what was asked, in the format the output name wants."""
        from . import images

        plan = prepared.plan
        notes = [picture.note] if picture.note else []
        for note in notes + protocol.geometry_warnings(plan, call.asked, picture.size):
            self._note(note, warnings)
        box, resize = geometry.fit(picture.size, plan)
        final = images.transform(picture, box, resize)
        suffix = prepared.output.suffix.lower() if prepared.output is not None else None
        wanted = images.FORMAT_BY_EXT.get(suffix or "")
        if wanted:
            final = images.convert(final, wanted)
        elif prepared.output is not None and suffix != f".{final.ext}":
            self._note(f"{prepared.output.name} holds a {final.format} picture (.{final.ext})", warnings)
        elif prepared.output is None:
            final = images.labelable(final)
        return final, box, resize

    def _save(self, data: bytes, prepared: Prepared, index: int, ext: str) -> Path:
        if prepared.output is not None:
            return files.save_exact(data, prepared.output)
        if prepared.request.count > 1:  # -n 3: one time and -1, -2, -3, so `ls` lists them in order
            stem = f"{naming.picture_stem(prepared.prompt, prepared.made)}-{index + 1}"
        else:
            stem = naming.picture_stem(prepared.prompt, self.clock())
        return files.save_new(data, prepared.output_dir, stem, ext)

    def _note(self, note: str, warnings: list[str]) -> None:
        self.warn(note)
        warnings.append(note)

    def _labelled(self, data: bytes, recipe: provenance.Recipe, warnings: list[str]) -> bytes:
        try:
            return provenance.label(data, recipe)
        except ValueError as exc:
            self._note(f"the picture is saved without its recipe ({exc})", warnings)
            return data


def _requested(prepared: Prepared, model: str) -> dict[str, Any]:
    request = prepared.request
    return {
        "size": f"{request.size[0]}x{request.size[1]}" if request.size else None,
        "aspect_ratio": str(request.aspect_ratio) if request.aspect_ratio else None,
        "resolution": request.resolution,
        "model": model,
        "ratio": str(prepared.plan.target_ratio),
    }


def _asked(call: Call) -> dict[str, Any] | None:
    asked = call.asked
    if asked is None:
        return None
    return {"width": asked.size[0], "height": asked.size[1], "ratio": str(asked.ratio), "tier": asked.tier}


def _with_input_paths(recipe: provenance.Recipe, prepared: Prepared) -> provenance.Recipe:
    """The history's copy of a recipe also says where each input picture was (the file says only its name:
    a shared picture should not tell where its sources live)."""
    inputs = [
        {**item, "path": str(upload.source.expanduser().resolve())}
        for item, upload in zip(recipe["inputs"], prepared.inputs, strict=False)
    ]
    return {**recipe, "inputs": inputs}
