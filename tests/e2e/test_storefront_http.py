"""The storefront's HTTP side on the served stack: negotiation at `/`, CSP, static files, product data and photos."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.support import API_KEY, FASHION_FEED

pytestmark = pytest.mark.e2e

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_a_browser_gets_the_page_with_a_strict_csp_and_json_clients_keep_the_index(stack):
    page = httpx.get(f"{stack.url}/", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'type="search"' in page.text and "data-results" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "<script>" not in page.text  # no inline script: the CSP would refuse it
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "accept" in page.headers["vary"].lower()
    assert API_KEY not in page.text  # the page asks for a key; it never carries one

    for accept in (None, "*/*", "application/json"):
        headers = {"Accept": accept} if accept else {}
        index = httpx.get(f"{stack.url}/", headers=headers)
        assert index.headers["content-type"] == "application/json", accept
        assert index.json()["links"]["search"] == "/api/v1/search"


def test_static_files_are_served_by_name_only(stack):
    script = httpx.get(f"{stack.url}/static/app.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    # Catalog text only ever goes in through textContent: no HTML-parsing sink anywhere in the script.
    assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|\beval\(", script.text)
    again = httpx.get(f"{stack.url}/static/app.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304
    for name in ("index.html", "..%2Fservice.py", "missing.js"):
        assert httpx.get(f"{stack.url}/static/{name}").status_code == 404, name
    assert httpx.get(f"{stack.url}/static/../service.py").status_code == 404


def test_a_product_photo_is_the_catalogs_own_file_and_needs_no_key(stack):
    product_id = 1163
    photo = httpx.get(f"{stack.url}/images/products/{product_id}")  # no X-API-Key: an <img> cannot send one
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert photo.content == (FASHION_FEED.parent / "images" / f"{product_id}.jpg").read_bytes()
    assert "max-age" in photo.headers["cache-control"]


def test_an_unknown_product_is_a_404_naming_the_field_and_a_bad_id_a_4xx(stack):
    missing = httpx.get(f"{stack.url}/images/products/42")
    assert missing.status_code == 404 and missing.json()["field"] == "product_id"
    for bad in ("0", "-1", "abc", str(2**64)):
        assert 400 <= httpx.get(f"{stack.url}/images/products/{bad}").status_code < 500, bad


def test_the_product_endpoint_needs_the_key_and_answers_like_search_results(stack):
    assert httpx.get(f"{stack.url}/api/v1/products/1163").status_code == 401
    product = stack.get("/api/v1/products/1163").json()
    assert product["product_id"] == 1163 and product["brand_name"] == "Nike" and product["price"] > 0
    missing = stack.get("/api/v1/products/42")
    assert missing.status_code == 404 and missing.json()["field"] == "product_id"
