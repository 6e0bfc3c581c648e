"""Reading a shopper's words (domain/query_understanding.py) against a small catalog vocabulary."""

from __future__ import annotations

import pytest

from domain.filters import SearchFilters
from domain.lexical import EMPTY_VOCABULARY, KeywordQuery, TermGroup, Vocabulary
from domain.query_understanding import PriceRange, merge_filters, understand

# A catalog's vocabulary in miniature: the words its product text contains, with document counts.
VOCABULARY = Vocabulary(
    words={
        "jacket": 11, "jackets": 11, "tshirts": 565, "tshirt": 60, "t": 500, "shirt": 540, "shirts": 45,
        "dress": 5, "dresses": 9, "heels": 37, "handbags": 33, "hand": 8, "bag": 53, "bags": 71,
        "sneaker": 20, "shoes": 160, "shoe": 120, "casual": 800, "sports": 430, "flip": 18, "flops": 18,
        "flop": 17, "sandals": 29, "sandal": 38, "red": 178, "black": 493, "navy": 73, "blue": 349,
        "grey": 159, "men": 900, "mens": 127, "women": 478, "womens": 12, "unisex": 91, "man": 3,
        "girls": 30, "girl": 25, "kids": 38, "red tape": 0, "tape": 30, "formal": 74, "peach": 2,
        "track": 54, "pants": 48, "pant": 6, "backpack": 23, "backpacks": 37, "sweatshirt": 6,
    },
    colours=("Black", "Blue", "Grey", "Navy Blue", "Peach", "Red"),
    documents=1099,
)  # fmt: skip


def forms(query: KeywordQuery) -> list[tuple[str, ...]]:
    return [group.forms for group in query.groups]


def test_a_misspelt_word_is_corrected_towards_the_catalog():
    understood = understand("jakcet", VOCABULARY)
    assert understood.corrected == "jacket"
    assert understood.text == "jacket"
    assert forms(understood.keyword) == [("jacket", "jackets")]


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("sandels", "sandals"), ("handbga", "handbag"), ("blak", "black"), ("sneekers", "sneakers"), ("trak", "track")],
)
def test_typos_of_one_edit_or_two_in_long_words(typo, meant):
    assert understand(typo, VOCABULARY).corrections == {typo: meant}


@pytest.mark.parametrize("word", ["beach", "party", "tote", "kicks", "gray", "for", "cap"])
def test_real_words_are_left_alone(word):
    # 'beach' is one edit from the catalog colour 'peach'; protected, synonym and colour words are never typos.
    understood = understand(f"{word} sandals", VOCABULARY)
    assert understood.corrected is None and understood.corrections == {}


def test_correction_needs_a_vocabulary():
    understood = understand("jakcet", EMPTY_VOCABULARY)
    assert understood.corrected is None
    assert understood.text == "jakcet"


def test_untouched_query_is_embedded_exactly_as_typed():
    assert understand("Red  Dress", VOCABULARY).text == "Red  Dress"


@pytest.mark.parametrize(
    ("query", "price", "rest"),
    [
        ("red dress under 50", PriceRange(None, 50.0), "red dress"),
        ("shoes below $30", PriceRange(None, 30.0), "shoes"),
        ("t-shirts between 20 and 40", PriceRange(20.0, 40.0), "t-shirts"),
        ("track pants from 30 to 60", PriceRange(30.0, 60.0), "track pants"),
        ("handbags over 100", PriceRange(100.0, None), "handbags"),
        ("sandals under 40 pounds", PriceRange(None, 40.0), "sandals"),
        ("black backpack under £40", PriceRange(None, 40.0), "black backpack"),
        ("shirts up to 49.99", PriceRange(None, 49.99), "shirts"),
        ("heels £20-£45", PriceRange(20.0, 45.0), "heels"),
        ("jackets 80 or less", PriceRange(None, 80.0), "jackets"),
        ("backpack 50 ltr", PriceRange(None, None), "backpack 50 ltr"),
        ("t20 cricket jersey", PriceRange(None, None), "t20 cricket jersey"),
    ],
)
def test_prices_in_the_words(query, price, rest):
    understood = understand(query, VOCABULARY)
    assert understood.price == price
    assert understood.text == (query if price == PriceRange() else rest)


def test_colours_come_from_the_catalog_whole_names_first():
    assert understand("navy blue t-shirt", VOCABULARY).colours == ("Navy Blue",)
    assert understand("navy jacket", VOCABULARY).colours == ("Navy Blue",)
    assert set(understand("blue jacket", VOCABULARY).colours) == {"Blue", "Navy Blue"}
    assert understand("gray hoodie", VOCABULARY).colours == ("Grey",)  # a shopper's word for a catalog colour
    assert understand("purple jacket", VOCABULARY).colours == ()  # this catalog has no purple


def test_colour_and_audience_rank_but_do_not_admit():
    query = understand("red dress for guys", VOCABULARY).keyword
    colour, audience, dress = query.groups
    assert colour.forms == ("red",) and not colour.admits
    assert audience.forms == ("men", "mens", "man", "unisex") and not audience.admits
    assert dress.forms == ("dress", "dresses") and dress.admits
    assert query.admitting == (dress,)


@pytest.mark.parametrize(
    ("query", "audience"),
    [("ladies' handbags", "women"), ("t-shirts for guys", "men"), ("womens track pants", "women"),
     ("men's shorts", "men"), ("girls tops", "girls"), ("kids dress", "kids"), ("handbags", None)],
)  # fmt: skip
def test_who_it_is_for(query, audience):
    assert understand(query, VOCABULARY).audience == audience


def test_a_colour_alone_admits_what_it_names():
    query = understand("black", VOCABULARY).keyword
    assert query.admitting == query.groups


def test_an_unknown_word_keeps_colour_and_audience_from_admitting_everything():
    # 'zorbs' is nowhere in the catalog: 'red' alone must not bring in every red product.
    query = understand("red zorbs", VOCABULARY).keyword
    assert query.partial and query.admitting == ()


def test_synonyms_expand_to_catalog_words_only():
    kicks = forms(understand("kicks", VOCABULARY).keyword)
    assert kicks == [("sneaker", "shoes", "shoe", "casual shoes", "casual shoe", "sports shoes", "sports shoe")]
    assert forms(understand("tote", VOCABULARY).keyword) == [("handbags", "hand bag", "hand bags")]
    assert forms(understand("slides", VOCABULARY).keyword) == [("flip flops", "flip flop", "sandals", "sandal")]
    assert forms(understand("pumps", VOCABULARY).keyword) == [("heels",)]


def test_tshirt_spellings_become_one_group_that_is_not_shirt():
    for spelling in ("t-shirt", "t shirt", "tshirt", "tee", "T-Shirts"):
        groups = forms(understand(spelling, VOCABULARY).keyword)
        assert len(groups) == 1 and "tshirts" in groups[0] and "t shirt" in groups[0], spelling
    [shirt] = understand("shirt", VOCABULARY).keyword.groups
    assert shirt.forms == ("shirt", "shirts") and "t shirt" in shirt.excludes


def test_rare_words_weigh_more():
    query = understand("black dress", VOCABULARY).keyword
    black, dress = query.groups
    assert dress.weight > black.weight


def test_stopwords_and_price_words_do_not_reach_the_keyword_leg():
    assert forms(understand("i want a jacket under 50", VOCABULARY).keyword) == [("jacket", "jackets")]


def test_term_groups_refuse_unsafe_forms():
    with pytest.raises(ValueError):
        TermGroup(("jacket' OR 1=1",))
    with pytest.raises(ValueError):
        TermGroup(())


# --- filters ------------------------------------------------------------------------------------------------


def test_inferred_price_becomes_a_filter():
    filters, applied = merge_filters(None, understand("red dress under 50", VOCABULARY))
    assert filters == SearchFilters(max_price=50)
    assert applied == {"max_price": 50.0}


def test_explicit_filter_wins_over_the_words():
    explicit = SearchFilters(max_price=30, in_stock=True)
    filters, applied = merge_filters(explicit, understand("red dress under 50", VOCABULARY))
    assert filters == explicit and applied == {}


def test_inferred_bound_joins_an_explicit_other_bound():
    filters, applied = merge_filters(SearchFilters(min_price=10), understand("dress under 50", VOCABULARY))
    assert filters == SearchFilters(min_price=10, max_price=50) and applied == {"max_price": 50.0}


def test_words_contradicting_the_request_are_dropped():
    filters, applied = merge_filters(SearchFilters(min_price=80), understand("dress under 50", VOCABULARY))
    assert filters == SearchFilters(min_price=80) and applied == {}


def test_nothing_inferred_keeps_the_request_filters_as_they_are():
    explicit = SearchFilters(brands=["Nike"])
    assert merge_filters(explicit, understand("jacket", VOCABULARY)) == (explicit, {})
    assert merge_filters(None, understand("jacket", VOCABULARY)) == (None, {})
