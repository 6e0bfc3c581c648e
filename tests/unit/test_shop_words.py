"""Words only a dictionary knows, read as the kinds of product they are (issue 14): domain/shop_words.py, its
use in query understanding and search, and the WordNet extract adapters/shop_words.py loads."""

from __future__ import annotations

import json

import pytest

from adapters.shop_words import LEXICON_FILE, shop_words
from domain.api_models import SearchRequest
from domain.lexical import KeywordHits, KeywordQuery, Vocabulary
from domain.query_understanding import understand
from domain.shop_words import CATEGORY, ShopWords, lemma_words
from tests.unit.test_search_pipeline import make_pipeline

# A hierarchy in miniature, laid out as the extract is: id -> lemmas, which sense of each lemma, parents.
SYNSETS = {
    "garment": (["garment"], [1], []),
    "coat": (["coat"], [1], ["garment"]),
    "jacket": (["jacket"], [1], ["coat"]),
    "parka": (["parka", "windbreaker", "anorak"], [1, 1, 1], ["jacket"]),
    "cagoule": (["cagoule"], [1], ["parka"]),
    "trouser": (["trouser", "pant"], [1, 2], ["garment"]),
    "pedal pusher": (["pedal_pusher", "toreador_pants"], [1, 1], ["trouser"]),
    "dress": (["dress", "frock"], [1, 2], ["garment"]),
    "apparel": (["apparel", "wearing_apparel", "dress", "clothes"], [1, 1, 3, 1], ["garment"]),
    "sundress": (["sundress"], [1], ["dress"]),
    "hat": (["hat"], [1], ["garment"]),
    "derby": (["bowler_hat", "derby"], [1, 1], ["hat"]),
    "hatband": (["hatband", "band"], [1, 9], ["hat"]),
    "shoe": (["shoe"], [1], ["garment"]),
    "slingback": (["slingback"], [1], ["shoe"]),
    "togs": (["togs", "duds"], [1, 1], ["garment"]),
    "toga": (["toga"], [1], ["garment"]),
    "wallet": (["wallet", "pocketbook"], [1, 2], []),
    "handbag": (["handbag", "pocketbook"], [1, 4], []),
    "backpack": (["backpack", "haversack", "rucksack"], [1, 1, 1], []),
    **{f"kind {n}": ([f"kind_{n}"], [1], ["garment"]) for n in range(CATEGORY)},  # garment: a category
}
LEXICON = ShopWords.from_mapping(
    {
        "synsets": {
            sid: {"lemmas": lemmas, "senses": senses, "hypernyms": parents, "gloss": f"a {sid}"}
            for sid, (lemmas, senses, parents) in SYNSETS.items()
        },
        "exceptions": {"togae": ["toga"]},
    }
)
VOCABULARY = Vocabulary(
    words={
        "jacket": 11, "jackets": 11, "dress": 9, "dresses": 9, "shoes": 160, "shoe": 120, "trousers": 2,
        "pants": 30, "pant": 6, "red": 178, "tops": 36, "top": 30, "backpack": 23, "backpacks": 37, "women": 478,
        "hat": 3,
    },
    colours=("Red",),
    documents=1099,
)  # fmt: skip


def forms(query: KeywordQuery) -> list[tuple[str, ...]]:
    return [group.forms for group in query.groups]


# --- the lexicon --------------------------------------------------------------------------------------------


def test_lemmas_read_as_query_words():
    assert lemma_words("Flip-flop") == "flip flop"
    assert lemma_words("woman's_clothing") == "woman clothing"


@pytest.mark.parametrize(
    ("written", "lemma"),
    [("cagoule", "cagoule"), ("cagoules", "cagoule"), ("pedal pushers", "pedal pusher"), ("togae", "toga"),
     ("dresses", "dress"), ("togs", "togs"), ("jandals", None)],
)  # fmt: skip
def test_words_are_found_through_wordnets_morphology(written, lemma):
    assert LEXICON.base_form(written) == lemma


def test_a_word_is_a_kind_of_its_ancestors_nearest_first_up_to_a_category():
    assert LEXICON.kinds("cagoule") == [[(), ("parka", "windbreaker", "anorak"), ("jacket",), ("coat",)]]
    assert LEXICON.kinds("garment") == []  # a category names no product


def test_senses_come_commonest_first():
    assert LEXICON.kinds("pocketbook") == [[("wallet",)], [("handbag",)]]


def test_a_lemma_names_only_its_commonest_shop_sense():
    assert LEXICON.kinds("sundress")[0][1] == ("dress", "frock")
    assert LEXICON.kinds("clothes") == [[("apparel", "wearing apparel")]]  # 'dress' there is not a frock


def test_an_everyday_word_is_read_only_when_a_product_is_what_it_commonly_means():
    assert LEXICON.kinds("band")  # a hatband, in its ninth sense
    assert LEXICON.kinds("band", everyday=True) == []
    assert LEXICON.kinds("cagoule", everyday=True)


# --- query understanding ------------------------------------------------------------------------------------


def test_a_word_no_catalog_or_table_knows_asks_for_the_kind_the_catalog_has():
    understood = understand("cagoule", VOCABULARY, shop_words=LEXICON)
    assert forms(understood.keyword) == [("jacket", "jackets")]
    assert understood.read_as == {"cagoule": ("jacket", "jackets")}
    assert not understood.keyword.partial
    assert understood.text == "cagoule"  # the encoder still reads the shopper's word


def test_without_the_lexicon_the_word_matches_nothing():
    understood = understand("cagoule", VOCABULARY)
    assert understood.keyword.is_empty and understood.keyword.partial


def test_a_phrase_and_the_rest_of_the_query():
    understood = understand("red pedal pushers for women", VOCABULARY, shop_words=LEXICON)
    assert understood.colours == ("Red",) and understood.audience == "women"
    assert understood.read_as == {"pedal pushers": ("trousers", "pant", "pants")}


def test_words_the_catalog_knows_are_left_alone():
    understood = understand("dress", VOCABULARY, shop_words=LEXICON)
    assert forms(understood.keyword) == [("dress", "dresses")] and understood.read_as == {}


def test_a_word_beside_a_product_is_read_only_as_a_kind_of_it():
    derby = understand("derby shoes", VOCABULARY, shop_words=LEXICON)  # a derby is a hat: not read
    assert forms(derby.keyword) == [("shoes", "shoe")] and derby.read_as == {}
    slingback = understand("slingback shoes", VOCABULARY, shop_words=LEXICON)
    assert slingback.read_as == {"slingback": ("shoe", "shoes")}


def test_a_dictionary_word_is_not_a_typo():
    assert understand("togs", VOCABULARY).corrections == {"togs": "tops"}
    understood = understand("togs", VOCABULARY, shop_words=LEXICON)
    assert understood.corrections == {} and understood.keyword.partial  # nothing the catalog has is a togs


class RecordingKeywords:
    def __init__(self) -> None:
        self.queries: list[KeywordQuery] = []

    async def search(self, query: KeywordQuery, *, k: int, filters: object) -> KeywordHits:
        self.queries.append(query)
        return KeywordHits(ids=[], scores=[], total=0)

    async def vocabulary(self) -> Vocabulary:
        return VOCABULARY


async def test_search_asks_the_keyword_leg_for_the_kind():
    keywords = RecordingKeywords()
    pipeline, *_ = make_pipeline(20, keywords=keywords, shop_words=LEXICON, cache_enabled=False)
    await pipeline.search(SearchRequest(query="haversack", limit=5))
    assert [forms(query) for query in keywords.queries] == [[("backpack", "backpacks")]]


# --- the WordNet extract ------------------------------------------------------------------------------------


def test_the_extract_loads_and_knows_words_no_table_lists():
    words = shop_words()
    assert len(words) > 1000
    assert ("jacket",) in words.kinds("cagoule")[0]
    assert words.kinds("slacks")[0][1][0] == "trouser"
    assert "backpack" in words.kinds("haversacks")[0][0]
    assert understand("haversack", VOCABULARY, shop_words=words).read_as == {"haversack": ("backpack", "backpacks")}


def test_the_extract_knows_regional_names_from_unicode_cldr():
    """WordNet 3.0 lacks these Australian and New Zealand names; CLDR's emoji keywords (en-AU) have them."""
    words = shop_words()
    assert ("sandal",) in words.kinds("jandals")[0]
    assert "shorts" in words.kinds("boardies")[0][1]
    assert "sunglasses" in words.kinds("sunnies")[0][1]


def test_the_extract_carries_wordnets_license():
    data = json.loads(LEXICON_FILE.read_text(encoding="utf-8"))
    assert data["license"].startswith("WordNet Release 3.0")
    assert "Copyright 2006 by Princeton University" in data["license"]
    assert data["emoji_license"].startswith("UNICODE LICENSE V3")
