"""The shop's part of WordNet behind domain/shop_words.py, read once per process from adapters/shop_words.json.

The file is extracted from WordNet 3.0 (Princeton University; its license travels in the file's "license" field)
by loadtests/relevance/build_shop_words.py, which says how to rebuild it: about 930 synsets under clothing,
footwear, bags, jewellery, sports equipment, bottles and the like, and 16 of regional names Unicode CLDR gives
the clothing and sport emoji ('boardies', 'jandal', 'sunnies'; its license in "emoji_license"), 164 KB, read in
a few milliseconds.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from domain.shop_words import ShopWords

LEXICON_FILE = Path(__file__).with_name("shop_words.json")


@lru_cache(maxsize=1)
def shop_words() -> ShopWords:
    return ShopWords.from_mapping(json.loads(LEXICON_FILE.read_text(encoding="utf-8")))
