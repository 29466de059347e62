"""Facts about the servers we talk to, written down once: model ids, ratios, tiers, pixel sizes, error words.

Both the client and the shipped emulator read them from here, so the emulator cannot drift from what the
client expects, and a change in the real server is one edit. docs/server-api.md says where each fact
comes from. Nothing here does anything: constants and the smallest pure helpers over them.
"""

from __future__ import annotations

# --- models ------------------------------------------------------------------------------------------------

PRO_IMAGE = "gemini-3-pro-image"
FLASH_IMAGE = "gemini-3.1-flash-image"
DEFAULT_MODEL = PRO_IMAGE  # ours; the server's own default on the images API is FLASH_IMAGE (§2)
SERVER_DEFAULT_MODEL = FLASH_IMAGE

# --- the kinds of server, and their two image APIs ---------------------------------------------------------

ANTIGRAVITY = "antigravity"
CLIPROXYAPI = "cliproxyapi"
LITELLM = "litellm"  # the LiteLLM proxy, a gateway in front of other servers
OPENAI = "openai"  # OpenAI itself, or any other OpenAI-compatible server
UNKNOWN = "unknown"  # /v1/models could not be read: send what every kind understands
CLIPROXYAPI_PORT = 8317

# LiteLLM gives itself away: its answers carry headers named `x-litellm-…`, it serves this health route
# (beside /v1, at the server's root) and its /v1/models entries may carry a `mode` such as "image_generation".
LITELLM_HEADER_PREFIX = "x-litellm-"
LITELLM_HEALTH = "/health/liveliness"
LITELLM_IMAGE_MODE = "image_generation"

IMAGES = "images"  # /images/generations, or /images/edits when there are input pictures
CHAT = "chat"  # /chat/completions with the image model
ROUTES = (IMAGES, CHAT)

# --- geometry (§3) -----------------------------------------------------------------------------------------

TIERS: tuple[str, ...] = ("1K", "2K", "4K")

# Pixel sizes Gemini 3 image models return, per ratio and tier (the proxy's own image guide).
SERVER_SIZES: dict[tuple[int, int], dict[str, tuple[int, int]]] = {
    (1, 1): {"1K": (1024, 1024), "2K": (2048, 2048), "4K": (4096, 4096)},
    (2, 3): {"1K": (848, 1264), "2K": (1696, 2528), "4K": (3392, 5056)},
    (3, 2): {"1K": (1264, 848), "2K": (2528, 1696), "4K": (5056, 3392)},
    (3, 4): {"1K": (896, 1200), "2K": (1792, 2400), "4K": (3584, 4800)},
    (4, 3): {"1K": (1200, 896), "2K": (2400, 1792), "4K": (4800, 3584)},
    (4, 5): {"1K": (928, 1152), "2K": (1856, 2304), "4K": (3712, 4608)},
    (5, 4): {"1K": (1152, 928), "2K": (2304, 1856), "4K": (4608, 3712)},
    (9, 16): {"1K": (768, 1376), "2K": (1536, 2752), "4K": (3072, 5504)},
    (16, 9): {"1K": (1376, 768), "2K": (2752, 1536), "4K": (5504, 3072)},
    (21, 9): {"1K": (1584, 672), "2K": (3168, 1344), "4K": (6336, 2688)},
}
# The server's names for its ratios, e.g. "21:9" (never the reduced "7:3").
RATIO_NAMES: tuple[str, ...] = tuple(f"{w}:{h}" for w, h in SERVER_SIZES)

# The server matches a `WxH` size to a ratio name when W/H is within this absolute distance of it, trying
# the names in this order; no match means 1:1 (§3).
SERVER_RATIO_MATCH = 0.05
SERVER_RATIO_ORDER = ("21:9", "16:9", "4:3", "3:4", "9:16", "3:2", "2:3", "5:4", "4:5", "1:1")

# The model-id grid Antigravity Tools always lists: `gemini-3-pro-image` with a tier and a ratio suffix.
MODEL_TIER_SUFFIXES = ("", "-2k", "-4k")
MODEL_RATIO_SUFFIXES = ("", "-1x1", "-4x3", "-3x4", "-16x9", "-9x16", "-21x9")
MODEL_GRID: tuple[str, ...] = tuple(
    f"{PRO_IMAGE}{tier}{ratio}" for tier in MODEL_TIER_SUFFIXES for ratio in MODEL_RATIO_SUFFIXES
)


# --- model families: whose geometry a model takes, whatever server is in between -------------------------

GEMINI = "gemini"  # Gemini image models: ten ratios, three tiers, exact pixel sizes (SERVER_SIZES)
OPENAI_IMAGES = "openai-images"  # OpenAI's own image models: three sizes only
OPENAI_IMAGE_PREFIXES = ("gpt-image", "dall-e", "chatgpt-image")
# OpenAI's own image sizes, by ratio.
OPENAI_SIZES: dict[tuple[int, int], tuple[int, int]] = {
    (1, 1): (1024, 1024),
    (3, 2): (1536, 1024),
    (2, 3): (1024, 1536),
}


def is_gemini_image(model: str) -> bool:
    """A Gemini image model, by its name (`gemini-3-pro-image`, `gemini/gemini-3-pro-image-preview`, …)."""
    lower = model.lower()
    return ("gemini" in lower and "image" in lower) or model in MODEL_GRID


def is_openai_image(model: str) -> bool:
    return model.lower().rsplit("/", 1)[-1].startswith(OPENAI_IMAGE_PREFIXES)


def has_grid_suffix(model: str) -> bool:
    """True for a model id ending in a tier or ratio suffix of the grid (`…-4k`, `…-16x9`)."""
    return model.endswith(tuple(s for s in (*MODEL_TIER_SUFFIXES, *MODEL_RATIO_SUFFIXES) if s))


def lists_model_grid(ids: set[str] | list[str]) -> bool:
    """Antigravity Tools gives itself away by listing ratio-suffixed pro-image ids."""
    ratios = tuple(s for s in MODEL_RATIO_SUFFIXES if s)
    return any(i.startswith(PRO_IMAGE + "-") and i.endswith(ratios) for i in ids)


# --- the words the server answers with (§8) ----------------------------------------------------------------

NO_IMAGES = "No images generated"
NO_QUOTA = "No accounts available with quota for model"
ALL_EXHAUSTED = "All accounts exhausted"
CAPACITY_EXHAUSTED = "MODEL_CAPACITY_EXHAUSTED"
PROXY_DISABLED = "Proxy service is currently disabled"
VALIDATION_REQUIRED = "VALIDATION_REQUIRED"
ENTITY_NOT_FOUND = "Requested entity was not found"
INPUT_UNREADABLE = "Unable to process input image"
IMAGE_READ_ERROR = "Image read error"
NOT_ON_IMAGES_API = "is not supported on /v1/images"  # CLIProxyAPI: Gemini models only on chat
TOKEN_REJECTED = "token_rejected"

# The whole bodies of the two answers a busy server gives at once (plain text, like every error of it): the
# proxy found no account free ("All accounts exhausted"), or Google has no capacity for the model.
ALL_EXHAUSTED_BODY = f"{ALL_EXHAUSTED}. Last error: 429 Too Many Requests: Quota exhausted"
CAPACITY_EXHAUSTED_BODY = (
    "Max retries exhausted. Last error: Upstream error 503 Service Unavailable: "
    '{"error": {"code": 503, "message": "No capacity available for model on the server", '
    '"status": "UNAVAILABLE", "details": [{"reason": "' + CAPACITY_EXHAUSTED + '"}]}}'
)

# ... and the words of gateways (LiteLLM) in front of it, inside JSON error objects.
NO_DB_CONNECTION = "no_db_connection"  # LiteLLM without a database, given a key that is not its master key
KEY_WORDS = (
    "invalid api key",
    "incorrect api key",
    "invalid_api_key",
    "api key not valid",
    "missing api key",
)
GATEWAY_UPSTREAM_AUTH = "litellm.AuthenticationError"  # the gateway's own key for its upstream was refused
UPSTREAM_UNREACHABLE = (
    "APIConnectionError",
    "Connection error.",  # the openai SDK inside LiteLLM, on the chat route
    "Connection refused",
    "[Errno 111]",
    "Cannot connect to host",
)
INVALID_MODEL = "Invalid model name passed in model="

# --- the shipped emulator ----------------------------------------------------------------------------------

# Every answer of the image-gen-local emulator carries this header, so a client can say plainly that the
# pictures are synthetic (the emulator behaves like Antigravity Tools in every other way).
EMULATOR_HEADER = "X-Emulator"
EMULATOR_HEADER_VALUE = "image-gen-local (synthetic images)"
SYNTHETIC_NOTE = "is the image-gen-local emulator: its pictures are SYNTHETIC, not made by an AI model"
# The emulator also labels every picture it draws with these words (PNG `Comment`, JPEG comment, EXIF
# ImageDescription), so a picture that reached us without the header (through a gateway) is still known to be
# synthetic.
SYNTHETIC_LABEL = "synthetic image, no AI model was used"

# --- inputs ------------------------------------------------------------------------------------------------

MAX_INPUTS = 14  # reference pictures a Gemini image model takes
