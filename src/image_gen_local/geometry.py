"""Aspect ratios and pixel sizes.

The server only knows ten ratios and three tiers, and it silently answers 1:1 for anything else. These pure
functions decide what to ask for so that, after a local centre-crop or resize, the user gets exactly the
ratio or pixel size they asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from .upstream import SERVER_SIZES, TIERS

# Ratios beyond these bounds would crop away most of any picture the server can make.
MIN_RATIO = Fraction(1, 10)
MAX_RATIO = Fraction(10, 1)

# The server's own sizes are close to, not exactly, their ratio (2752x1536 is "16:9"): within this relative
# distance a picture counts as having the ratio asked for.
DELIVERED_RATIO_TOLERANCE = 0.02

# A returned size belongs to a tier when its long side is within this relative distance of the tier's.
TIER_TOLERANCE = 0.05

# An input picture within this relative distance of a supported ratio is treated as having that ratio,
# so a 4032x3025 photo is not cropped by one pixel.
SNAP_TOLERANCE = 0.01


@dataclass(frozen=True, order=True)
class Ratio:
    """An aspect ratio kept as a reduced fraction, so 32:18 and 16:9 compare equal."""

    w: int
    h: int

    @classmethod
    def of(cls, w: int | Fraction, h: int | Fraction = 1) -> Ratio:
        value = Fraction(w) / Fraction(h)
        return cls(value.numerator, value.denominator)

    @property
    def value(self) -> float:
        return self.w / self.h

    @property
    def supported(self) -> bool:
        return (self.w, self.h) in _SERVER_NAME

    def __str__(self) -> str:
        """The server's own spelling for its ratios (21:9, not 7:3), else the reduced W:H."""
        w, h = _SERVER_NAME.get((self.w, self.h), (self.w, self.h))
        return f"{w}:{h}"


# Reduced ratio -> the server's name for it: 21:9 reduces to 7:3 but the server only knows "21:9".
_SERVER_NAME: dict[tuple[int, int], tuple[int, int]] = {
    (Fraction(w, h).numerator, Fraction(w, h).denominator): (w, h) for w, h in SERVER_SIZES
}
SUPPORTED_RATIOS: tuple[Ratio, ...] = tuple(Ratio.of(w, h) for w, h in SERVER_SIZES)
LARGEST_TIER = TIERS[-1]


def parse_ratio(text: str) -> Ratio:
    """Parse `W:H` (integers or decimals, e.g. `16:9`, `2.39:1`); raise ValueError with the reason."""
    parts = text.strip().split(":")
    if len(parts) != 2:
        raise ValueError(f"aspect ratio {text!r} is not W:H; use e.g. 16:9, 3:4 or 2.39:1")
    try:
        w, h = (Fraction(p.strip()) for p in parts)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"aspect ratio {text!r} is not W:H with numbers; use e.g. 16:9") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"aspect ratio {text!r} must have two positive numbers; use e.g. 16:9")
    ratio = w / h
    if not MIN_RATIO <= ratio <= MAX_RATIO:
        raise ValueError(f"aspect ratio {text!r} is more extreme than 1:10 or 10:1")
    return Ratio.of(ratio)


def parse_size(text: str) -> tuple[int, int]:
    """Parse `WxH` pixels (`1920x1080`); raise ValueError with the reason."""
    parts = text.strip().lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"size {text!r} is not WxH in whole pixels; use e.g. 1920x1080")
    w, h = (int(p) for p in parts)
    if w < 1 or h < 1:
        raise ValueError(f"size {text!r} must be at least 1x1 pixels")
    if not MIN_RATIO <= Fraction(w, h) <= MAX_RATIO:
        raise ValueError(f"size {text!r} is more extreme than 1:10 or 10:1")
    return w, h


def parse_tier(text: str) -> str:
    """Parse `1k|2k|4k` in any case into the server's `1K|2K|4K`."""
    tier = text.strip().upper()
    if tier not in TIERS:
        raise ValueError(f"resolution {text!r} is not one of 1k, 2k, 4k")
    return tier


def nearest_supported(ratio: Ratio) -> Ratio:
    """The supported ratio closest on a log scale, which is the one a centre-crop loses least from."""
    return min(SUPPORTED_RATIOS, key=lambda r: abs(math.log(r.value / ratio.value)))


def snap_ratio(ratio: Ratio) -> Ratio:
    """Replace a ratio within SNAP_TOLERANCE of a supported one by that one."""
    near = nearest_supported(ratio)
    return near if abs(near.value / ratio.value - 1) <= SNAP_TOLERANCE else ratio


def server_size(ratio: Ratio, tier: str) -> tuple[int, int]:
    return SERVER_SIZES[_SERVER_NAME[(ratio.w, ratio.h)]][tier]


def crop_box(size: tuple[int, int], ratio: Ratio) -> tuple[int, int, int, int] | None:
    """The centred (left, top, right, bottom) box of `size` with exactly `ratio`; None if it has it."""
    w, h = size
    if w * ratio.h == h * ratio.w:
        return None
    if w * ratio.h > h * ratio.w:  # too wide: trim the sides
        new_w = max(1, round(h * ratio.w / ratio.h))
        if new_w == w:
            return None
        left = (w - new_w) // 2
        return (left, 0, left + new_w, h)
    new_h = max(1, round(w * ratio.h / ratio.w))
    if new_h == h:
        return None
    top = (h - new_h) // 2
    return (0, top, w, top + new_h)


def _size_after(size: tuple[int, int], box: tuple[int, int, int, int] | None) -> tuple[int, int]:
    return size if box is None else (box[2] - box[0], box[3] - box[1])


def cropped_size(size: tuple[int, int], ratio: Ratio) -> tuple[int, int]:
    return _size_after(size, crop_box(size, ratio))


@dataclass(frozen=True)
class Plan:
    """What to ask the server for, and what the user gets after local post-processing."""

    request_ratio: Ratio  # a ratio the server knows
    tier: str  # 1K, 2K or 4K
    target_ratio: Ratio  # the exact ratio the user gets
    final_size: tuple[int, int] | None = None  # exact pixels the user gets (--size), else None

    @property
    def expected_size(self) -> tuple[int, int]:
        """What the server should send back."""
        return server_size(self.request_ratio, self.tier)

    @property
    def delivered_size(self) -> tuple[int, int]:
        """What the user should get if the server honours the request."""
        return self.final_size or _after_crop(self.expected_size, self)


def plan(ratio: Ratio | None = None, tier: str = "1K", size: tuple[int, int] | None = None) -> Plan:
    """Decide the request for an exact `size`, or else a `ratio` (default 1:1) at `tier`.

    Raises ValueError when `size` is larger than anything the server can make.
    """
    if size is not None:
        target = Ratio.of(*size)
        ask = nearest_supported(target)
        for candidate in TIERS:
            cw, ch = cropped_size(server_size(ask, candidate), target)
            if cw >= size[0] and ch >= size[1]:
                return Plan(ask, candidate, target, size)
        lw, lh = cropped_size(server_size(ask, LARGEST_TIER), target)
        raise ValueError(
            f"size {size[0]}x{size[1]} is larger than the server can make at this ratio "
            f"(largest: {lw}x{lh}, from {ask} at 4K); ask for at most that"
        )
    target = ratio or Ratio(1, 1)
    ask = target if target.supported else nearest_supported(target)
    return Plan(ask, tier, target)


def has_ratio(size: tuple[int, int], ratio: Ratio) -> bool:
    return abs((size[0] / size[1]) / ratio.value - 1) <= DELIVERED_RATIO_TOLERANCE


def _crop_for(actual: tuple[int, int], plan: Plan) -> tuple[int, int, int, int] | None:
    """Keep the server's rendering of a supported ratio as it is; crop anything else to the exact target."""
    keep = plan.final_size is None and plan.target_ratio == plan.request_ratio
    if keep and has_ratio(actual, plan.target_ratio):
        return None
    return crop_box(actual, plan.target_ratio)


def _after_crop(actual: tuple[int, int], plan: Plan) -> tuple[int, int]:
    return _size_after(actual, _crop_for(actual, plan))


def fit(
    actual: tuple[int, int], plan: Plan
) -> tuple[tuple[int, int, int, int] | None, tuple[int, int] | None]:
    """How to turn what arrived into what was asked: a crop box (or None), then a resize (or None)."""
    box = _crop_for(actual, plan)
    after_crop = _size_after(actual, box)
    resize = plan.final_size if plan.final_size and plan.final_size != after_crop else None
    return box, resize


def tier_of(size: tuple[int, int], ratio: Ratio) -> str | None:
    """Which tier a returned size belongs to for a ratio, or None when it matches none (server ignored it)."""
    if not ratio.supported:
        return None
    long_side = max(size)
    for tier in TIERS:
        expected = max(server_size(ratio, tier))
        if abs(expected - long_side) <= expected * TIER_TOLERANCE:
            return tier
    return None


def describe_ratio(size: tuple[int, int]) -> str:
    """A human label for the ratio of a size: the supported ratio it matches, else the reduced W:H."""
    exact = Ratio.of(*size)
    near = nearest_supported(exact)
    return str(near) if has_ratio(size, near) else str(exact)
