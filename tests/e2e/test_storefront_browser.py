"""The storefront page in a real browser: Debian's chromium driven by Playwright, against the session's served stack.

The stack has API keys on, so every test also goes through the page's key prompt. Screenshots of the main states
land in reports/browser/ for a person to look at. No browser is downloaded: Playwright drives /usr/bin/chromium
(`.ci/run` installs it when missing).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import OPERATOR_KEY
from tests.e2e.support import API_KEY, FASHION_FEED, REPO

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "reports" / "browser"
TIMEOUT_MS = 20_000
CARDS = "[data-results] [data-product-id]"
FEED_CARDS = '[data-shelf="feed"] [data-product-id]'


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does it when missing)")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, stack):  # type: ignore[no-untyped-def]
    """A fresh visitor (own storage, so a new shopper id) on the shop's front page, the API key entered once."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=stack.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: problems.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.goto("/")
    page.locator("[data-key-dialog]").wait_for(state="visible")
    shot(page, "00-api-key-prompt")
    key_input = page.get_by_label("API key", exact=True)
    key_input.fill(API_KEY)
    key_input.press("Enter")
    page.wait_for_selector(FEED_CARDS)
    yield page
    context.close()
    assert problems == [], problems  # no script error, nothing the CSP had to refuse


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def search(page, query: str) -> None:  # type: ignore[no-untyped-def]
    box = page.get_by_role("searchbox", name="Search")
    box.fill(query)
    box.press("Enter")
    page.wait_for_function(
        "q => document.querySelector('[data-results-title]').textContent.includes(q)"
        " && document.querySelectorAll('[data-results] [data-product-id]').length > 0",
        arg=query,
    )


def card_ids(page, selector: str = CARDS) -> list[int]:  # type: ignore[no-untyped-def]
    return [int(value) for value in page.locator(selector).evaluate_all("cards => cards.map(c => c.dataset.productId)")]


def search_total(page) -> int:  # type: ignore[no-untyped-def]
    stats = page.locator("[data-search-stats]").inner_text()
    return int(re.search(r"of (\d+)", stats).group(1))


def wait_for_photos(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-results] img')].slice(0, 8)"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )


def wait_for_total_other_than(page, total: int) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function(
        "total => !document.querySelector('[data-search-stats]')?.textContent.includes(`of ${total}`)", arg=total
    )


def test_search_shows_cards_with_mode_and_time_and_filters_narrow_them(page):
    shot(page, "01-front")
    search(page, "backpack")
    cards = page.locator(CARDS)
    assert cards.count() == 24
    first_page = card_ids(page)
    first = cards.first
    assert first.locator("img").get_attribute("src").startswith("/images/products/")
    assert first.locator(".card-name").inner_text() and first.locator(".price").inner_text().startswith("£")
    stats = page.locator("[data-search-stats]").inner_text()
    assert re.search(r"(hybrid|vector|keyword) search · [\d.]+ ms", stats), stats
    wait_for_photos(page)  # the first photos loaded: the catalog's own files, through the API
    shot(page, "02-search")
    unfiltered = search_total(page)

    page.get_by_role("button", name="Next →").click()  # pages: the next 24, at their own address
    page.wait_for_function("() => document.querySelector('[data-search-stats]')?.textContent.startsWith('25–')")
    assert "page=2" in page.evaluate("location.hash") and not set(card_ids(page)) & set(first_page)
    page.go_back()
    page.wait_for_function("() => document.querySelector('[data-search-stats]')?.textContent.startsWith('1–24 of')")

    page.locator("[data-filters] [name=in_stock]").check()
    page.wait_for_function("() => location.hash.includes('in_stock=1')")
    page.wait_for_function(
        f"() => !document.querySelector('[data-search-stats]')?.textContent.includes('of {unfiltered}')"
    )
    in_stock = search_total(page)
    assert 0 < in_stock < unfiltered
    assert "Out of stock" not in page.locator("[data-results]").inner_text()

    brand_select = page.locator("[data-filters] select[name=brand]")
    brand = brand_select.locator("option").nth(1).get_attribute("value")
    brand_select.select_option(brand)
    page.wait_for_function("() => location.hash.includes('brand=')")
    page.wait_for_function(
        f"() => !document.querySelector('[data-search-stats]')?.textContent.includes('of {in_stock}')"
    )
    brands = page.locator(f"{CARDS} .card-brand").all_inner_texts()
    assert brands and {text.lower() for text in brands} == {brand.lower()}
    assert search_total(page) < in_stock
    page.evaluate("window.scrollTo(0, 0)")
    wait_for_photos(page)
    shot(page, "03-filtered")


def test_a_click_changes_the_for_you_shelf_on_the_next_view(page):
    before = card_ids(page, FEED_CARDS)
    assert page.locator('[data-shelf="feed"]').get_attribute("data-strategy") == "cold_start"

    search(page, "black heels")
    page.locator(CARDS).first.locator("a").click()
    page.wait_for_function("() => /^#\\/product\\/\\d+$/.test(location.hash)")
    product_id = int(page.evaluate("location.hash.split('/').pop()"))
    page.wait_for_selector('[data-shelf="similar"] [data-product-id]')
    assert product_id not in card_ids(page, '[data-shelf="similar"] [data-product-id]')
    page.get_by_role("button", name="Add to bag").click()
    page.wait_for_selector("text=In your bag ✓")
    shot(page, "04-product")

    page.go_back()  # the browser's back button returns to the search, whose shop front reloads the shelf
    page.wait_for_function("() => document.querySelector('[data-shelf=\"feed\"]').dataset.strategy === 'personalized'")
    after = card_ids(page, FEED_CARDS)
    assert after != before
    assert page.get_by_role("searchbox", name="Search").input_value() == "black heels"
    page.evaluate("window.scrollTo(0, 0)")  # the browser restored the search's scroll position
    shot(page, "05-for-you")


def test_a_bad_price_range_shows_the_apis_message(page):
    search(page, "dress")
    page.locator("[data-filters] [name=min_price]").fill("100")
    page.locator("[data-filters] [name=max_price]").fill("10")
    page.get_by_role("button", name="Apply", exact=True).click()
    notice = page.locator("[data-error]")
    notice.wait_for(state="visible")
    text = notice.inner_text()
    assert "400" in text and "min_price must not be greater than max_price" in text and "filters" in text
    shot(page, "06-bad-price-range")


def test_keyboard_only_can_search_and_open_a_product(page):
    def tab_to(check: str, limit: int = 80) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(check):
                return
        raise AssertionError(f"Tab never reached: {check}")

    tab_to("document.activeElement?.type === 'search'")
    page.keyboard.type("running shoes")
    page.keyboard.press("Enter")
    page.wait_for_selector(CARDS)
    tab_to("!!document.activeElement?.closest('[data-results] [data-product-id]')")
    focused = int(page.evaluate("document.activeElement.closest('[data-product-id]').dataset.productId"))
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => location.hash === '#/product/{focused}'")
    page.wait_for_selector(f'[data-product][data-product-id="{focused}"] h1')
    assert page.evaluate("document.activeElement.textContent").endswith("Back to the shop")  # focus follows
    page.wait_for_selector('[data-shelf="similar"] [data-product-id]')
    shot(page, "07-keyboard-product")


def test_catalog_text_is_never_run_as_html(page):
    # A hostile product name, as a third-party feed could carry, put into the real API's answer on its way in.
    hostile = '<img src=x onerror="window.__xss=1">Zebra <b>Tote</b>'

    def poison(route):  # type: ignore[no-untyped-def]
        response = route.fetch()
        body = response.json()
        body["results"][0]["product_name"] = hostile
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/api/v1/search", poison)
    search(page, "tote bag")
    name = page.locator(f"{CARDS} .card-name").first
    assert name.inner_text() == hostile  # shown as the literal text
    assert name.locator("img, b").count() == 0
    assert page.evaluate("window.__xss") is None


def test_image_search_with_a_text_model_says_why_it_cannot(page):
    page.get_by_role("button", name="Search by photo").click()
    page.locator("[data-image-input]").set_input_files(str(FASHION_FEED.parent / "images" / "1163.jpg"))
    page.get_by_role("button", name="Find look-alikes").click()
    error = page.locator("[data-image-error]")
    error.wait_for(state="visible")
    assert "text-only model" in error.inner_text() and "image tower" in error.inner_text()
    shot(page, "08-image-search-text-model")


def test_operator_panel_shows_status_cache_hit_rate_and_p95(page):
    search(page, "watch")
    page.get_by_role("button", name="Operator").click()
    panel = page.locator("[data-operator]")
    # Operator pages need an operator key (OPERATOR_KEYS): the panel asks for one, as it would an operator.
    panel.get_by_label("Operator key").fill(OPERATOR_KEY)
    panel.get_by_role("button", name="Use key").click()
    panel.locator('[data-op="performance"]').wait_for()
    assert panel.locator('[data-op="status"] .badge').inner_text().lower() in ("ok", "degraded")
    assert re.match(r"^[\d.]+%$", panel.locator("[data-hit-rate]").inner_text())
    performance = panel.locator('[data-op="performance"]').inner_text()
    assert "search" in performance and re.search(r"[\d.]+ ms", performance)
    shot(page, "09-operator")
