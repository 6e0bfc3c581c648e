"""POST /api/v1/search/image through `bentoml serve`, with a model that has an image tower.

A tiny random-weight open_clip model (its config and checkpoint made here) is imported through the real
`vitrine model import open-clip NAME --pretrained FILE --config FILE` command, and the real fashion feed's
photos go into the index. Random weights know nothing of fashion, so the assertions are about the path, not relevance:
the upload is decoded and encoded by the image tower (different photos rank differently, the same photo the
same way), and filters and pagination hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.support import FASHION_FEED, embedded_env, embedded_stack, run_cli, write_tiny_clip

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def clip_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    home = tmp_path_factory.mktemp("clip")
    config, checkpoint = write_tiny_clip(home)
    # The index inside each API worker (INDEX_IN_PROCESS=true); the session stack runs it as a service.
    env = {**embedded_env(home), "INDEX_IN_PROCESS": "true"}
    run_cli("db", "upgrade", env=env)
    run_cli("catalog", "import", str(FASHION_FEED), env=env)
    run_cli(
        "model", "import", "open-clip", "tiny-clip", "--pretrained", str(checkpoint), "--config", str(config), env=env
    )
    run_cli("index", "build", env=env)
    with embedded_stack(home, env) as client:
        yield client


def photo(product_id: int) -> bytes:
    return (FASHION_FEED.parent / "images" / f"{product_id}.jpg").read_bytes()


def test_the_upload_goes_through_the_image_tower(clip_stack):
    status = clip_stack.get("/status").json()
    assert status["encoder"]["has_image_tower"] is True
    assert status["index"]["in_process"] is True and status["index"]["state"] == "up"

    def top(product_id: int) -> list[int]:
        upload = {"image": (f"{product_id}.jpg", photo(product_id), "image/jpeg")}
        response = clip_stack.post("/api/v1/search/image", files=upload, data={"limit": "5"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["query"] == "<image>" and body["cached"] is False and len(body["results"]) == 5
        return [r["product_id"] for r in body["results"]]

    tshirt, backpack = 1163, 1525
    assert top(tshirt) == top(tshirt)
    assert top(tshirt) != top(backpack)


def test_image_search_respects_filters_and_pages(clip_stack):
    upload = {"image": ("1525.jpg", photo(1525), "image/jpeg")}
    filters = json.dumps({"categories": ["Tshirts"], "max_price": 60})
    first = clip_stack.post("/api/v1/search/image", files=upload, data={"filters": filters, "limit": "10"}).json()
    second = clip_stack.post(
        "/api/v1/search/image", files=upload, data={"filters": filters, "limit": "10", "offset": "10"}
    ).json()
    assert len(first["results"]) == len(second["results"]) == 10
    for result in first["results"] + second["results"]:
        assert result["category_name"] == "Tshirts" and result["price"] <= 60
    assert not {r["product_id"] for r in first["results"]} & {r["product_id"] for r in second["results"]}
    bad = clip_stack.post("/api/v1/search/image", files=upload, data={"limit": "0"})
    assert bad.status_code == 400 and "limit" in bad.text
