"""Error paths: whatever the API does, the page says what happened in words, never a traceback.

The real API is used where it can be made to fail on demand (no key, a wrong key, bytes that are
not an image); a tiny local server stands in for what it cannot be made to do (5xx, slowness, a
proxy's HTML error page), and nothing listening stands in for an API that is down.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.ui.conftest import APP
from tests.ui.error_server import Behaviour, error_server
from tests.ui.live_api import LiveApi, free_port

pytestmark = pytest.mark.slow


def app_at(url: str, *, key: str | None = "k", timeout_s: float | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.secrets["FASHION_SEARCH_UI_API_URL"] = url
    if key is not None:
        at.secrets["FASHION_SEARCH_UI_API_KEY"] = key
    if timeout_s is not None:
        at.secrets["FASHION_SEARCH_UI_TIMEOUT_S"] = str(timeout_s)
    return at.run()


def search_text(at: AppTest, text: str = "red dress") -> AppTest:
    at.text_input(key="text_query").input(text)
    return at.button(key="text_submit").click().run()


def messages(at: AppTest) -> str:
    return " | ".join(e.value for e in (*at.error, *at.warning))


def assert_no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Traceback" not in messages(at)


def test_api_down_says_it_cannot_reach_the_api() -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    at = app_at(dead)
    assert_no_traceback(at)
    assert any(c.value == "API: unreachable" for c in at.sidebar.caption)
    at = search_text(at)
    assert_no_traceback(at)
    assert f"Cannot reach the search API at {dead}" in messages(at)
    assert at.error, "an unreachable API is an error, not a warning"


def test_missing_key_is_reported_as_401(live_api_server: LiveApi) -> None:
    at = search_text(app_at(live_api_server.url, key=None))
    assert_no_traceback(at)
    assert "wants an API key" in messages(at)
    assert "FASHION_SEARCH_UI_API_KEY" in messages(at)


def test_wrong_key_is_reported_as_403(live_api_server: LiveApi) -> None:
    at = search_text(app_at(live_api_server.url, key="not-the-key"))
    assert_no_traceback(at)
    assert "refused this app's API key" in messages(at)


def test_bytes_that_are_not_an_image_get_the_apis_422_message(live_api_server: LiveApi) -> None:
    at = app_at(live_api_server.url, key=live_api_server.key)
    at.file_uploader(key="image_upload").set_value(("photo.png", b"this is not a png", "image/png"))
    at = at.button(key="image_submit").click().run()
    assert_no_traceback(at)
    text = messages(at)
    assert "could not use this input" in text
    assert "The API said:" in text  # the API's own reason is passed on


def test_errors_are_not_cached_a_retry_reaches_the_api() -> None:
    with error_server(Behaviour(status=503, code="store_unavailable", message="busy")) as srv:
        at = search_text(app_at(f"http://127.0.0.1:{srv.server_address[1]}"))
        at = at.button(key="text_submit").click().run()
        posts = [r for r in srv.requests_seen if r.startswith("POST")]
    assert len(posts) == 2
    assert "failed (HTTP 503)" in messages(at)


def _b(status: int, code: str, message: str, field: str | None = None) -> Behaviour:
    return Behaviour(status=status, code=code, message=message, field=field)


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        (_b(401, "unauthorized", "missing X-API-Key header"), "wants an API key"),
        (_b(403, "forbidden", "invalid API key"), "refused this app's API key"),
        (
            _b(422, "invalid_filter", "unknown field 'colour'", "filters"),
            "could not use this input (in filters). The API said: unknown field 'colour'",
        ),
        (_b(413, "payload_too_large", "over 4194304 bytes"), "too large for the API"),
        (_b(500, "internal_error", "boom"), "failed (HTTP 500)"),
        (Behaviour(status=502, raw_body=b"<html>Bad Gateway</html>"), "failed (HTTP 502)"),
        (_b(429, "throttled", "slow down"), "busy right now"),
        (
            Behaviour(status=504, raw_body=b'{"message": "Endpoint request timed out"}'),
            "timed out (HTTP 504)",
        ),
    ],
    ids=["401", "403", "422", "413", "500", "502-html", "429", "504-gateway"],
)
def test_error_statuses_read_as_sentences(behaviour: Behaviour, expected: str) -> None:
    with error_server(behaviour) as srv:
        at = search_text(app_at(f"http://127.0.0.1:{srv.server_address[1]}"))
    assert_no_traceback(at)
    assert expected in messages(at)


def test_a_slow_api_times_out_with_a_message() -> None:
    with error_server(Behaviour(status=200, delay_s=3.0)) as srv:
        at = search_text(app_at(f"http://127.0.0.1:{srv.server_address[1]}", timeout_s=0.5))
    assert_no_traceback(at)
    assert "did not answer within 0.5 s" in messages(at)


def test_an_upload_over_the_limit_is_refused_before_it_is_sent() -> None:
    with error_server(Behaviour(status=500)) as srv:
        at = app_at(f"http://127.0.0.1:{srv.server_address[1]}")
        # The uploader is configured with the API's 4 MB limit.
        assert at.file_uploader(key="image_upload").proto.max_upload_size_mb == 4
        big = b"\x89PNG\r\n\x1a\n" + b"\0" * (4 * 1024 * 1024)
        at.file_uploader(key="image_upload").set_value(("big.png", big, "image/png"))
        at = at.button(key="image_submit").click().run()
        posts = [r for r in srv.requests_seen if r.startswith("POST")]
    assert_no_traceback(at)
    assert "the limit is 4 MB" in messages(at)
    assert posts == []


def test_a_url_that_is_not_http_is_refused_in_the_page() -> None:
    with error_server(Behaviour(status=500)) as srv:
        at = app_at(f"http://127.0.0.1:{srv.server_address[1]}")
        at.text_input(key="image_url").input("file:///etc/passwd")
        at = at.button(key="image_submit").click().run()
        posts = [r for r in srv.requests_seen if r.startswith("POST")]
    assert "must start with http:// or https://" in messages(at)
    assert posts == []


def test_a_thin_strip_gets_the_apis_reason_and_no_page_long_preview(
    live_api_server: LiveApi,
) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 20_000), (200, 30, 30)).save(buf, format="PNG")
    at = app_at(live_api_server.url, key=live_api_server.key)
    at.file_uploader(key="image_upload").set_value(("strip.png", buf.getvalue(), "image/png"))
    at = at.button(key="image_submit").click().run()
    assert_no_traceback(at)
    assert "aspect ratio" in messages(at)  # the API's 422 reason, passed on
    # Not stretched to the column's width (a 1 x 20000 strip would be 6 million pixels tall).
    assert any("no preview" in c.value for c in at.caption), [c.value for c in at.caption]
    assert not at.image
