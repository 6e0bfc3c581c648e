"""The text a product is embedded as: one function, shared by `vitrine index build` and anything re-embedding.

Order matters more than completeness: CLIP's text tower reads only 77 tokens (about 60 words) and MiniLM 256,
so the fields a shopper types come first (name, brand, category, colour, who it is for), then the free text
(description, keywords). A field already said (the brand inside the name, a keyword repeating the colour) is
left out rather than repeated, because repetition spends tokens and over-weights that word. Descriptions in
feeds often carry HTML and entities; they are reduced to plain text. The result is cut at a word boundary.

Pure: no I/O, no heavy imports. Accepts any object with the `ProductRecord` attribute names
(domain/catalog_feed.py); a missing or empty attribute is skipped.
"""

from __future__ import annotations

import html
import re

MAX_CHARS = 512
# Fields in the order they are written; each is one short phrase.
HEAD_FIELDS = (
    "product_name",
    "brand_name",
    "category_name",
    "fashion_category",
    "colour",
    "fashion_suitable_for",
)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_KEYWORD_SPLIT = re.compile(r"[,;|]")


def product_document(product: object, *, max_chars: int = MAX_CHARS) -> str:
    """Name. Brand. Category. Colour. Gender. Description. Keywords: deduplicated, at most `max_chars`."""
    parts: list[str] = []
    for name in HEAD_FIELDS:
        _add_phrase(parts, _clean(getattr(product, name, None)))
    description = _clean(getattr(product, "description", None))
    if description and not _said(parts, description):
        parts.append(description.rstrip(". "))
    keywords = [_clean(word) for word in _KEYWORD_SPLIT.split(_text(getattr(product, "keywords", None)))]
    fresh: list[str] = []
    for word in keywords:
        if word and not _said(parts, word) and word.casefold() not in {w.casefold() for w in fresh}:
            fresh.append(word)
    if fresh:
        parts.append(", ".join(fresh))
    return _truncate(". ".join(parts), max_chars)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _clean(value: object) -> str:
    text = html.unescape(_TAG.sub(" ", _text(value)))
    return _SPACE.sub(" ", text).strip()


def _said(parts: list[str], phrase: str) -> bool:
    """Whether `phrase` already appears, as whole words and ignoring case, in what was written."""
    pattern = re.compile(rf"(?<!\w){re.escape(phrase.casefold())}(?!\w)")
    return any(pattern.search(part.casefold()) for part in parts)


def _add_phrase(parts: list[str], phrase: str) -> None:
    if phrase and not _said(parts, phrase):
        parts.append(phrase.rstrip(". "))


def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > max_chars // 2 else text[:max_chars]).rstrip(" .,;")
