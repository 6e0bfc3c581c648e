"""Words no synonym table lists (issue 14): colour shades, relations, negations, read by query understanding."""

from __future__ import annotations

import pytest

from adapters.colour_library import colour_lexicon
from adapters.dictionary import english_words
from domain.colour_names import ColourLexicon, to_lab
from domain.lexical import KeywordQuery, TermGroup, Vocabulary
from domain.query_understanding import understand
from tests.unit.test_query_understanding import VOCABULARY

# A palette in miniature, with RGB as a colour library would give it.
LIBRARY = ColourLexicon.from_hex(
    {
        "xkcd:red": "#e50000", "xkcd:blue": "#0343df", "xkcd:navy blue": "#001146", "xkcd:grey": "#929591",
        "xkcd:black": "#000000", "xkcd:green": "#15b01a", "xkcd:crimson": "#8c000f", "xkcd:scarlet": "#be0119",
        "xkcd:cobalt": "#1e488f", "xkcd:teal": "#029386", "xkcd:charcoal": "#343837", "xkcd:denim": "#3b638c",
        "xkcd:bottle green": "#044a05", "xkcd:light blue": "#95d0fc",
    }
)  # fmt: skip
WITH_GREEN = Vocabulary(
    words={**VOCABULARY.words, "green": 59, "denim": 12},
    colours=(*VOCABULARY.colours, "Green"),
    documents=VOCABULARY.documents,
)


def test_lab_of_white_and_black():
    assert to_lab((255, 255, 255))[0] == pytest.approx(100, abs=0.1)
    assert to_lab((0, 0, 0))[0] == pytest.approx(0, abs=0.1)


def test_a_shade_stands_for_the_catalog_colour_of_its_hue():
    shades = LIBRARY.shades_for(["Red", "Blue", "Navy Blue", "Grey", "Black", "Green"])
    assert shades["crimson"][0] == "Red" and shades["scarlet"][0] == "Red"
    assert shades["teal"] == ("Green",)  # a green-blue, not the grey of its lightness
    assert "Blue" in shades["cobalt"] or "Navy Blue" in shades["cobalt"]
    assert shades["charcoal"][0] in ("Black", "Grey")
    assert "red" not in shades  # the catalog's own colours are not shades of themselves


def test_shades_in_queries_become_catalog_colours():
    assert understand("crimson jacket", WITH_GREEN, colour_names=LIBRARY).colours == ("Red",)
    assert understand("bottle green jacket", WITH_GREEN, colour_names=LIBRARY).colours == ("Green",)
    # 'light blue' keeps reading as the catalog's blues; 'crimson' is no misspelling to correct
    assert set(understand("light blue jacket", WITH_GREEN, colour_names=LIBRARY).colours) == {"Blue", "Navy Blue"}
    assert understand("crimson jacket", WITH_GREEN, colour_names=LIBRARY).corrections == {}
    # a library name the catalog uses for a thing of its own stays a word
    assert understand("denim jacket", WITH_GREEN, colour_names=LIBRARY).colours == ()
    assert understand("crimson jacket", WITH_GREEN).colours == ()  # no library: catalog names only


def test_the_real_library_knows_shoppers_shades():
    shades = colour_lexicon().shades_for(["Red", "Blue", "Navy Blue", "Grey", "Black", "Green", "Yellow", "Maroon"])
    assert shades["scarlet"] == ("Red",)
    assert shades["burgundy"] == ("Maroon",)
    assert "Yellow" in shades["lemon"]


def test_the_shops_colour_names_fill_what_matplotlib_lacks():
    palette = ["Red", "Blue", "Navy Blue", "Grey", "Black", "White", "Brown", "Tan", "Beige", "Maroon", "Orange"]
    shades = colour_lexicon().shades_for(palette)
    assert shades["graphite"][0] in ("Black", "Grey")
    assert "Brown" in shades["cognac"]
    assert set(shades["espresso"]) <= {"Black", "Brown", "Maroon"}
    # names the libraries have that a shopper means otherwise: a shoe, a fabric, a person, an adjective, a brand
    for word in ("ballet", "stiletto", "cashmere", "cowboy", "vintage", "red tape"):
        assert word not in shades


def test_a_fashion_colour_word_is_read_as_its_colour():
    vocabulary = Vocabulary(
        words={**VOCABULARY.words, "shoes": 40}, colours=(*VOCABULARY.colours, "Brown"), documents=1099
    )
    understood = understand("cognac shoes", vocabulary, colour_names=colour_lexicon(), dictionary=english_words())
    assert "Brown" in understood.colours
    assert understood.corrections == {}  # a colour, not a misspelt word


@pytest.mark.parametrize(
    ("query", "audience"),
    [("tshirt for my husband", "men"), ("handbag for my wife", "women"), ("top for my mum", "women"),
     ("shoes for my dad", "men"), ("dress for my niece", "girls"), ("tshirt for my nephew", "boys"),
     ("jacket for him", "men"), ("flip flops for her", "women"), ("tshirts for the lads", "men")],
)  # fmt: skip
def test_a_relation_or_pronoun_says_who_it_is_for(query, audience):
    assert understand(query, VOCABULARY).audience == audience


def unwanted(query: KeywordQuery) -> list[TermGroup]:
    return [group for group in query.groups if group.unwanted]


def test_a_negated_colour_lowers_products_of_that_colour():
    understood = understand("tshirt not black", VOCABULARY)
    assert understood.excluded_colours == ("Black",) and understood.colours == ()
    (group,) = unwanted(understood.keyword)
    assert group.forms == ("black",) and group.attribute and group.weight < 0 and not group.admits
    assert understood.text == "tshirt"  # the encoder never reads 'black'
    assert understood.keyword.admitting == understood.keyword.wanted


@pytest.mark.parametrize(
    ("query", "excluded", "kept"),
    [("shoes without heels", ("heels",), "shoes"), ("bag that is not a backpack", ("backpack",), "bag"),
     ("non sports shoes for men", ("sports",), "shoes men"), ("shoes not for sports", ("sports",), "shoes"),
     ("jacket other than navy blue", (), "jacket"), ("sneakers but not red", (), "sneakers")],
)  # fmt: skip
def test_what_follows_a_negation_is_ruled_out(query, excluded, kept):
    understood = understand(query, VOCABULARY)
    assert understood.excluded_words == excluded
    assert all(word in understood.text.split() for word in kept.split())
    assert not set(excluded) & set(understood.text.split())  # the encoder never reads what is ruled out
    assert all(not group.admits for group in unwanted(understood.keyword))


def test_a_negation_with_nothing_after_it_is_dropped():
    understood = understand("jacket not", VOCABULARY)
    assert understood.excluded_words == () and understood.excluded_colours == ()
    assert not unwanted(understood.keyword)


def test_a_query_of_only_unwanted_things_admits_nothing_by_words():
    assert understand("not black", VOCABULARY).keyword.admitting == ()


def test_an_unwanted_group_cannot_admit():
    with pytest.raises(ValueError):
        TermGroup(("black",), weight=-1.0, admits=True)


def test_words_of_the_language_are_not_taken_for_typos():
    vocabulary = Vocabulary(
        words={**VOCABULARY.words, "deep": 3, "gold": 8}, colours=VOCABULARY.colours, documents=1099
    )
    assert understand("keep warm", vocabulary).corrections == {"keep": "deep"}  # no dictionary: as before
    understood = understand("keep warm", vocabulary, dictionary=english_words())
    assert understood.corrections == {} and understood.text == "keep warm"
    assert understand("jakcet", vocabulary, dictionary=english_words()).corrections == {"jakcet": "jacket"}


def test_the_dictionary_is_the_models_whole_words():
    words = english_words()
    assert {"keep", "head", "park", "button"} <= words
    assert not {"jakcet", "sandels", "tshrit", "##ing"} & words
