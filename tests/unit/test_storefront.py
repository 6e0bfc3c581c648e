"""The storefront adapter's decisions that need no server: content negotiation, which files may be served."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.storefront import STATIC_FILES, WEB_DIR, ProductImages, local_image, wants_html

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER_ACCEPT, True),
        ("text/html", True),
        (None, False),
        ("", False),
        ("*/*", False),  # curl, httpx, requests: keep the JSON index
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0.9, application/json;q=0.8", True),
        ("text/html;q=0", False),
        ("text/html;q=nonsense", False),
    ],
)
def test_only_a_client_that_names_html_gets_the_page(accept, html):
    assert wants_html(accept) is html


def test_static_files_are_the_web_folders_assets_by_name():
    assert {"app.js", "app.css"} <= set(STATIC_FILES)
    assert "index.html" not in STATIC_FILES  # the page is served at / only
    assert all(path.parent == WEB_DIR for path in STATIC_FILES.values())


@pytest.fixture
def image_tree(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "feed" / "images"
    root.mkdir(parents=True)
    (root / "1.jpg").write_bytes(b"\xff\xd8\xff photo")
    (root / "notes.txt").write_text("not an image")
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"outside the root")
    os.symlink(outside, root / "link.jpg")
    return {"root": root, "outside": outside}


def test_a_stored_image_inside_the_root_is_served(image_tree):
    root = image_tree["root"]
    assert local_image(str(root / "1.jpg"), [root]) == (root / "1.jpg").resolve()
    assert local_image(str(root / "sub" / ".." / "1.jpg"), [root]) is None  # no such folder: resolve fails


@pytest.mark.parametrize(
    "source",
    [
        "/etc/passwd",
        "{root}/../../secret.jpg",  # climbs out of the root
        "{root}/link.jpg",  # a symlink inside the root to a file outside it
        "{root}/notes.txt",  # inside, but not an image
        "{root}/missing.jpg",
        "{root}",  # a folder
        "",
    ],
)
def test_a_path_outside_the_root_or_not_an_image_is_never_served(image_tree, source):
    root = image_tree["root"]
    assert local_image(source.format(root=root), [root]) is None


def test_with_no_roots_configured_no_local_file_is_served(image_tree):
    assert local_image(str(image_tree["root"] / "1.jpg"), []) is None


async def _fetch_from(rows):
    async def fetch(ids):
        return {pid: rows[pid] for pid in ids if pid in rows}

    return fetch


async def test_product_images_answer_photo_placeholder_redirect_or_404(image_tree):
    root = image_tree["root"]
    rows = {
        1: {"image_url": str(root / "1.jpg"), "category_name": "Heels", "colour": "Red"},
        2: {"image_url": "/etc/passwd", "category_name": "Heels", "colour": "Red"},
        3: {"image_url": None, "category_name": "Backpacks", "colour": "Black"},
        4: {"image_url": "https://cdn.example.com/4.jpg", "category_name": "Caps", "colour": "Blue"},
    }
    images = ProductImages(await _fetch_from(rows), [root])

    photo = await images.response(1)
    assert photo.status_code == 200 and photo.media_type == "image/jpeg"
    refused = await images.response(2)
    assert refused.media_type == "image/svg+xml" and b"passwd" not in refused.body
    assert refused.headers["x-vitrine-image"] == "placeholder"
    assert "sandbox" in refused.headers["content-security-policy"]
    placeholder = await images.response(3)
    assert placeholder.media_type == "image/svg+xml" and b"Backpacks" in placeholder.body
    redirect = await images.response(4)
    assert redirect.status_code == 302 and redirect.headers["location"] == "https://cdn.example.com/4.jpg"
    missing = await images.response(5)
    assert missing.status_code == 404 and b"product_id" in missing.body
