import pytest

from image_gen_local.errors import ExitCode
from image_gen_local.failures import Failure, Kind, classify, retry_delay, server_words

GOOGLE_429 = (
    'Max retries exhausted. Last error: Upstream error 429 Too Many Requests: {"error": {"code": 429, '
    '"status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", '
    '"retryDelay": "1.17s"}]}}'
)


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (429, GOOGLE_429, Kind.RATE_LIMIT, ExitCode.QUOTA),
        (429, "All accounts exhausted. Last error: ...", Kind.RATE_LIMIT, ExitCode.QUOTA),
        (
            503,
            "Max retries exhausted. Last error: 503 MODEL_CAPACITY_EXHAUSTED",
            Kind.CAPACITY,
            ExitCode.QUOTA,
        ),
        (503, "Proxy service is currently disabled", Kind.DISABLED, ExitCode.UNREACHABLE),
        (502, "No images generated", Kind.NO_IMAGE, ExitCode.NO_IMAGE),
        (502, "No accounts available with quota for model: gemini-3-pro-image", Kind.MODEL, ExitCode.QUOTA),
        (500, "boom", Kind.CAPACITY, ExitCode.QUOTA),
        (401, "", Kind.AUTH, ExitCode.AUTH),
        (403, '{"error":{"message":"VALIDATION_REQUIRED: verify"}}', Kind.ACCOUNT, ExitCode.AUTH),
        (429, "All accounts exhausted: 403 VALIDATION_REQUIRED", Kind.ACCOUNT, ExitCode.AUTH),
        (
            404,
            '{"error":{"message":"Requested entity was not found.","code":404}}',
            Kind.MODEL,
            ExitCode.QUOTA,
        ),
        (404, "", Kind.ROUTE, ExitCode.UNREACHABLE),
        (405, "", Kind.ROUTE, ExitCode.UNREACHABLE),
        (
            400,
            '{"error":{"message":"Model gemini-3-pro-image is not supported on /v1/images/generations or '
            '/v1/images/edits. Use ...","type":"invalid_request_error"}}',
            Kind.ROUTE,
            ExitCode.UNREACHABLE,
        ),
        (413, "length limit exceeded", Kind.TOO_LARGE, ExitCode.BAD_INPUT),
        (400, "Missing 'prompt' field", Kind.BAD_REQUEST, ExitCode.UNREACHABLE),
    ],
)
def test_classify(status, body, kind, code):
    failure = classify(status, body)
    assert failure.kind is kind
    assert failure.exit_code is code
    assert str(status) in failure.detail
    assert ";" in failure.line()


def test_retryable_kinds():
    assert classify(429, "x").retryable
    assert classify(503, "MODEL_CAPACITY_EXHAUSTED").retryable
    assert not classify(503, "Proxy service is currently disabled").retryable
    assert not classify(401, "").retryable
    slow = Failure(Kind.TIMEOUT, "slow")
    assert slow.retryable and slow.exit_code == ExitCode.DEADLINE


def test_retry_delay_sources():
    assert retry_delay(GOOGLE_429, {}) == pytest.approx(1.17)
    assert retry_delay("", {"Retry-After": "7"}) == 7
    assert retry_delay('"quotaResetDelay": "250ms"', {}) == pytest.approx(0.25)
    assert retry_delay("exhausted your capacity, reset after 1s", {}) == 1
    assert retry_delay("nothing", {}) is None


def test_server_words_trims_and_unwraps_json():
    assert server_words('{"error": {"message": "  bad\\n  thing "}}') == "bad thing"
    assert server_words("<!DOCTYPE html><html><body>hi</body></html>") == "an HTML page"
    assert len(server_words("x" * 5000)) <= 240


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("\x00" * 100_000, "100000 characters of binary data, not words"),  # a decompressed bomb
        ("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "18 characters of binary data, not words"),
        ("quota \x1b[31mgone\x1b[0m", "quota \\x1b[31mgone\\x1b[0m"),  # words with an escape stay words
    ],
)
def test_server_words_never_quote_binary_data(body, words):
    assert server_words(body) == words


# What LiteLLM 1.106.2 answered in each situation (status, body) -> the class, exit code and words kept.
LITELLM_ANSWERS = [
    ("a key that is not its master key, no database", 400,
     '{"error": {"message": "No connected db.", "type": "no_db_connection", "param": null, "code": "400"}}',
     Kind.AUTH, ExitCode.AUTH, "master key"),
    ("a key refused, with a database", 401,
     '{"error": {"message": "Authentication Error, Invalid proxy server token passed.", '
     '"type": "auth_error"}}',
     Kind.AUTH, ExitCode.AUTH, "Invalid proxy server token"),
    ("invalid api key wording under another status", 400, '{"error": "Invalid API key"}',
     Kind.AUTH, ExitCode.AUTH, "Invalid API key"),
    ("its own key for the upstream refused", 401,
     '{"error": {"message": "litellm.AuthenticationError: GeminiException - API key not valid.", '
     '"type": "auth_error", "code": "401"}}',
     Kind.GATEWAY_KEY, ExitCode.AUTH, "gateway's own key"),
    ("an unknown model", 400,
     '{"error": "/image/generations: Invalid model name passed in model=nope. Call `/v1/models` to view '
     'available models for your key."}',
     Kind.UNKNOWN_MODEL, ExitCode.USAGE, "model=nope"),
    ("the openai/ upstream down", 500,
     '{"error": {"message": "litellm.APIConnectionError: APIConnectionError: OpenAIException - Connection '
     'error.", "type": null, "code": "500"}}',
     Kind.UPSTREAM_DOWN, ExitCode.UNREACHABLE, "the gateway cannot reach its upstream"),
    ("the gemini/ upstream down", 500,
     '{"error": {"message": "litellm.InternalServerError: GeminiException - '
     '[Errno 111] Connection refused"}}',
     Kind.UPSTREAM_DOWN, ExitCode.UNREACHABLE, "Connection refused"),
    ("its crashing auth path", 500, "Internal Server Error", Kind.CAPACITY, ExitCode.QUOTA,
     "Internal Server Error"),
    ("an upstream 429", 429, '{"error": {"message": "litellm.RateLimitError: RateLimitError: quota"}}',
     Kind.RATE_LIMIT, ExitCode.QUOTA, "RateLimitError"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "kind", "code", "words"),
    [case[1:] for case in LITELLM_ANSWERS],
    ids=[case[0] for case in LITELLM_ANSWERS],
)
def test_gateway_answers_get_their_true_class(status, body, kind, code, words):
    failure = classify(status, body)
    assert (failure.kind, failure.exit_code) == (kind, code)
    assert words in failure.line()
    assert "{" not in failure.detail  # the words, not the JSON around them


def test_json_error_objects_are_read_in_every_shape():
    assert server_words('{"error": "plain string"}') == "plain string"
    assert server_words('{"error": {"message": "No connected db.", "type": "no_db_connection"}}') == (
        "No connected db. (no_db_connection)"
    )
    assert server_words('{"error": {"type": "rate_limit_exceeded", "code": "429"}}') == "rate_limit_exceeded"
    assert server_words('{"message": "top level"}') == "top level"
    assert server_words('{"error": {"message": "x", "code": "400"}}') == "x"
