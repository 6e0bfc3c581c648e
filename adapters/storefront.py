"""The storefront preview page: `GET /` for browsers, its static files, product pages' data and product images.

- `GET /` negotiates: a browser (Accept lists text/html before any JSON) gets web/index.html; every other
  client (curl's `*/*`, `Accept: application/json`) keeps the JSON index of links. Both answers say `Vary: Accept`.
- The page and its files are served with a Content-Security-Policy that runs only the page's own scripts and
  styles (no inline script, no eval, no other origin), so catalog text that slipped into the DOM could not run.
- Static files are a fixed allow-list read from web/ at import: a request names a file, never a path.
- Product images are public, like every shop's product photos (an <img> cannot send X-API-Key): by product id,
  from the catalog's own stored image. A local path is served only when it resolves inside one of
  `CATALOG_IMAGE_ROOTS` and is an image file; an http(s) image is a redirect; anything else (no image, a
  missing file, a path outside the roots) gets a generated SVG silhouette of the category in the product's colour.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from adapters.http_errors import error_response
from domain.api_models import ProductResult
from domain.errors import NotFound, VitrineError
from domain.placeholder_image import placeholder_svg
from domain.products import product_result

log = logging.getLogger("vitrine.storefront")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# Fixed at import: the files that exist in web/ (besides the page itself), by name.
STATIC_FILES: dict[str, Path] = {
    path.name: path for path in sorted(WEB_DIR.glob("*")) if path.is_file() and path.suffix in _MEDIA_TYPES
}
IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
}

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: blob: data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# A placeholder opened on its own is an SVG document: nothing in it may run or load.
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
# The page and its files change with a deploy: revalidate each time (they are small; ETags make it cheap).
_REVALIDATE = "no-cache"
IMAGE_MAX_AGE_S = 3600
_URL = re.compile(r"^https?://", re.IGNORECASE)
_MEDIA_RANGE = re.compile(r"^\s*([^;\s]+)\s*(?:;(.*))?$")

Row = Mapping[str, Any]
FetchProducts = Callable[[Sequence[int]], Awaitable[Mapping[int, Row]]]


# --- the page -----------------------------------------------------------------------------------------------
def _quality(params: str | None) -> float:
    for param in (params or "").split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


def wants_html(accept: str | None) -> bool:
    """True when the client asks for HTML at least as much as for JSON, naming text/html itself.

    A wildcard alone (`*/*`, what curl and most HTTP libraries send) keeps the JSON index, so scripts written
    against today's `GET /` keep working.
    """
    html = json = 0.0
    for media_range in (accept or "").split(","):
        match = _MEDIA_RANGE.match(media_range)
        if match is None:
            continue
        media_type, quality = match.group(1).lower(), _quality(match.group(2))
        if media_type in ("text/html", "application/xhtml+xml"):
            html = max(html, quality)
        elif media_type in ("application/json", "application/*"):
            json = max(json, quality)
    return html > 0 and html >= json


def front_door(request: Request, index: dict[str, Any]) -> Response:
    """`GET /`: the storefront page for a browser, the JSON index of links for everyone else."""
    if wants_html(request.headers.get("accept")):
        return _file(WEB_DIR / "index.html", "text/html; charset=utf-8", request)
    return JSONResponse(index, headers={"Vary": "Accept"})


def static_file(name: str, request: Request) -> Response:
    path = STATIC_FILES.get(name)
    if path is None:
        return JSONResponse({"error": "NotFound", "detail": f"no static file {name!r}", "field": "name"}, 404)
    return _file(path, _MEDIA_TYPES[path.suffix], request)


def _file(path: Path, media_type: str, request: Request) -> Response:
    # With the stat given, FileResponse sets ETag and Last-Modified at once, so a revalidation can be a 304.
    response = FileResponse(path, media_type=media_type, stat_result=path.stat())
    headers = {**_SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP, "Cache-Control": _REVALIDATE, "Vary": "Accept"}
    etag = response.headers.get("etag")
    if etag is not None and request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={**headers, "ETag": etag})
    response.headers.update(headers)
    return response


# --- product data and images --------------------------------------------------------------------------------
async def product(fetch: FetchProducts, product_id: int) -> ProductResult:
    """One active product as every endpoint shapes it (`score` is 0: nothing was ranked)."""
    row = (await fetch([product_id])).get(product_id)
    if row is None:
        raise NotFound(f"no active product with id {product_id}", field="product_id")
    return product_result(row, score=0.0)


def local_image(source: str, roots: Sequence[Path]) -> Path | None:
    """The file a stored image path names, if it is an image file inside one of `roots`; else None.

    Resolved first (symlinks and `..` included), so a path that merely starts with a root cannot leave it.
    """
    try:
        path = Path(source).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    if path.suffix.lower() not in IMAGE_TYPES or not path.is_file():
        return None
    for root in roots:
        try:
            if path.is_relative_to(root.resolve()):
                return path
        except OSError:
            continue
    return None


class ProductImages:
    """`GET /images/products/{id}`: the catalog's photo of a product, or its placeholder."""

    def __init__(self, fetch: FetchProducts, roots: Sequence[Path]) -> None:
        self._fetch = fetch
        self._roots = [Path(root).resolve() for root in roots]
        self._warned_outside = False

    async def response(self, product_id: int) -> Response:
        try:
            row = (await self._fetch([product_id])).get(product_id)
        except VitrineError as exc:
            return error_response(exc)
        if row is None:
            return error_response(NotFound(f"no active product with id {product_id}", field="product_id"))
        source = (row.get("image_url") or "").strip()
        cache = {"Cache-Control": f"public, max-age={IMAGE_MAX_AGE_S}", "X-Content-Type-Options": "nosniff"}
        if _URL.match(source):
            return RedirectResponse(source, status_code=302, headers=cache)
        if source:
            path = local_image(source, self._roots)
            if path is not None:
                return FileResponse(path, media_type=IMAGE_TYPES[path.suffix.lower()], headers=cache)
            self._note_refused(product_id, source)
        svg = placeholder_svg(row.get("category_name"), row.get("colour"), row.get("fashion_category"))
        return Response(
            svg,
            media_type="image/svg+xml",
            headers={**cache, "Content-Security-Policy": SVG_CSP, "X-Vitrine-Image": "placeholder"},
        )

    def _note_refused(self, product_id: int, source: str) -> None:
        # Once per process: a whole feed of local paths outside the roots would otherwise log every image.
        if not self._warned_outside:
            self._warned_outside = True
            log.warning(
                "product %s: image %s is not an image file inside CATALOG_IMAGE_ROOTS (%s); serving placeholders",
                product_id,
                source,
                ", ".join(str(root) for root in self._roots) or "none set",
            )
