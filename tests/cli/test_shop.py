"""The demo storefront `journeys up` serves (`cli.shop.Storefront`), on a real loopback port: its
files, the generated `/config.js`, the strict policy on every answer, and a clean stop. The
storefront in a browser, with the SDK, is tested in tests/api/test_browser_sdk.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli.shop import STOREFRONT, Storefront, content_security_policy
from cli.up import port_is_free

API = "http://127.0.0.1:8123"


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Storefront]:
    storefront = Storefront(0, API + "/", "shop-write-key", log_path=tmp_path / "shop.log")
    storefront.start()
    yield storefront
    storefront.stop()


def test_the_pages_come_with_a_policy_that_allows_nothing_inline(shop: Storefront) -> None:
    answer = httpx.get(f"{shop.url}/checkout.html")
    assert answer.status_code == 200
    assert 'id="pay-button"' in answer.text
    policy = answer.headers["content-security-policy"]
    assert policy == content_security_policy(API)
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == f"'self' {API}"
    assert directives["style-src"] == f"'self' {API}"
    assert directives["connect-src"] == API
    assert "unsafe" not in policy
    assert answer.headers["cache-control"] == "no-store"
    for name in ("index.html", "shop.js", "shop.css"):
        assert httpx.get(f"{shop.url}/{name}").status_code == 200, name


def test_config_js_names_the_api_and_the_write_key(shop: Storefront) -> None:
    answer = httpx.get(f"{shop.url}/config.js?v=2")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "content-security-policy" in answer.headers
    match = re.fullmatch(r"window\.JOURNEYS_CONFIG = (\{.*\});\n", answer.text)
    assert match is not None, answer.text
    assert json.loads(match.group(1)) == {"apiUrl": API, "writeKey": "shop-write-key"}


def test_nothing_outside_the_storefront_is_served(shop: Storefront) -> None:
    for path in ("/missing.html", "/../pyproject.toml", "/%2e%2e/pyproject.toml"):
        answer = httpx.get(f"{shop.url}{path}")
        assert answer.status_code == 404, path
        assert "content-security-policy" in answer.headers


def test_requests_are_logged_to_the_file_and_stop_frees_the_port(tmp_path: Path) -> None:
    storefront = Storefront(0, API, "k", log_path=tmp_path / "shop.log")
    storefront.start()
    port = int(storefront.url.rsplit(":", 1)[1])
    assert not port_is_free(port)
    assert httpx.get(f"{storefront.url}/index.html").status_code == 200
    storefront.stop()
    assert port_is_free(port)
    assert '"GET /index.html HTTP/1.1" 200' in (tmp_path / "shop.log").read_text()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{storefront.url}/index.html")


def test_a_taken_port_is_an_error_at_once() -> None:
    with Storefront(0, API, "k") as taken, pytest.raises(OSError, match="in use"):
        Storefront(int(taken.url.rsplit(":", 1)[1]), API, "k")


@pytest.mark.parametrize("page", sorted(p.name for p in STOREFRONT.glob("*.html")))
def test_the_pages_carry_no_inline_script_or_style(page: str) -> None:
    html = (STOREFRONT / page).read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html
    assert " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None  # no inline event handlers
