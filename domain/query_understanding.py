"""What a shopper's words mean beyond their letters: prices, colours, who it is for, typos, other words.

`understand(query, vocabulary)` reads a query such as "ladies' red dres under £50" against the catalog's own
vocabulary (domain/lexical.py) and returns:

- the text to embed: price phrases taken out, misspelt words corrected ("ladies red dress");
- a price range stated in words ("under 50", "below $30", "between 20 and 40", "from 30 to 60", "over 100"),
  which becomes a filter unless the request brings its own (`merge_filters`);
- the catalog colours named ("red", "navy" -> Navy Blue; a shade such as "crimson" -> Red through a colour
  library, domain/colour_names.py), and who it is for ("for guys", "ladies'", "for my wife", "for him");
- what the shopper does not want ("not black", "without heels", "non sports"): groups that lower the score of
  products matching them, and words the encoder never sees (an embedding of "not black" is near "black");
- the keyword query: one term group per thing asked for, each with the forms a catalog may use for it
  (plural and singular, catalog spellings, synonyms from domain/synonyms.py), keeping only forms the
  catalog's vocabulary contains; a word neither the catalog nor the synonym table knows, when a dictionary of
  shop words (domain/shop_words.py, from WordNet) is given, asks for the nearest kind of it the catalog has
  ('haversack' -> backpack, 'canteen' -> bottle), and is no typo.

Spelling is corrected only for words the catalog does not contain and a dictionary of the language (when given)
does not know, only towards words the catalog contains (or words the
synonym table knows), and only by one edit (two for words of six letters or more, keeping the first letter;
a swap of neighbours counts as one), so a correction never invents a word that matches nothing.
Pure: no I/O; rapidfuzz does the edit distances.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rapidfuzz.distance import DamerauLevenshtein

from domain.colour_names import LONGEST_NAME, ColourLexicon
from domain.filters import SearchFilters
from domain.lexical import KeywordQuery, TermGroup, Vocabulary, is_form
from domain.shop_words import ShopWords
from domain.synonyms import COLOURS, NOT_THE_SAME, SPELLINGS, SYNONYMS, longest_key

# --- words --------------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


STOPWORDS = frozenset(
    _words(
        "a an the and or for with in on of to my me i im some any want wants need needs looking look show find buy "
        "get please pair pairs new nice good best rated cheap cheapest budget affordable item items stuff "
        "something that this those these is are be by from at as but which who its it"
    )
)
# Who it is for: shopper words -> the forms catalogs use (unisex products suit men and women alike).
AUDIENCES: dict[str, tuple[str, ...]] = {
    "men": ("men", "mens", "man", "male", "unisex"),
    "women": ("women", "womens", "woman", "female", "ladies", "unisex"),
    "girls": ("girls", "girl", "kids"),
    "boys": ("boys", "boy", "kids"),
    "kids": ("kids", "kid", "girls", "boys", "children"),
}
# A relation names who it is for as surely as "men" does ("for my husband"); grown-up relations are read as
# men or women (a niece or a nephew as a child).
AUDIENCE_WORDS: dict[str, str] = {
    **dict.fromkeys(_words("men mens man mans male males guy guys gent gents gentleman gentlemen him his he"), "men"),
    **dict.fromkeys(
        _words(
            "husband husbands hubby boyfriend boyfriends bf dad dads daddy father fathers grandpa grandad granddad "
            "grandfather brother brothers bro uncle fiance groom lad lads bloke blokes fella fellas dude dudes sir"
        ),
        "men",
    ),
    **dict.fromkeys(
        _words("women womens woman womans female females lady ladies ladys her hers she"),
        "women",
    ),
    **dict.fromkeys(
        _words(
            "wife wives wifey missus mrs girlfriend girlfriends gf mum mums mom moms mommy mummy mother mothers "
            "grandma granny nan nana grandmother sister sisters sis aunt auntie aunty fiancee bride madam gal gals"
        ),
        "women",
    ),
    **dict.fromkeys(_words("girl girls daughter daughters niece nieces"), "girls"),
    **dict.fromkeys(_words("boy boys son sons nephew nephews"), "boys"),
    **dict.fromkeys(_words("kid kids child children childrens toddler toddlers"), "kids"),
}
# Everyday words that are not typos even when a catalog does not use them ("beach" is not "peach").
PROTECTED_WORDS = frozenset(
    _words(
        "beach party wedding gym yoga workout office work school college travel hiking trekking running walking "
        "summer winter spring autumn fall rain rainy warm casual formal smart sport sports outdoor indoor holiday "
        "baseball golf cricket tennis hockey cycling swimming skiing rugby boxing dance running training "
        "gift gifts present cotton wool leather denim silk linen sale kids baby plus size small large medium "
        "slim loose long short tall petite"
    )
)
# Words saying that what follows is not wanted; `non` binds to the one word after it ('non sports shoes').
NEGATIONS = frozenset(_words("not no without except excluding non nothing"))
NEGATION_PHRASES = (("other", "than"), ("apart", "from"), ("rather", "than"))
# Colour-name words too vague to name a colour on their own.
VAGUE_COLOUR_WORDS = frozenset(_words("light dark pale deep bright multi mid"))
MIN_CORRECTABLE_LENGTH = 4
LONG_WORD = 6  # from this length on, a correction may take two edits ('sandles' -> 'sandals')

# --- prices -------------------------------------------------------------------------------------------------

_CURRENCY = r"(?:[$£€]|us\$)"
_UNIT = r"(?:pounds?|quid|dollars?|bucks|euros?|gbp|usd|eur)"
_AMOUNT = rf"(?<![\w.]){_CURRENCY}?\s*(\d{{1,7}}(?:[.,]\d{{1,2}})?)(?![\d\w])\s*(?:{_UNIT}\b|{_CURRENCY})?"
_PRICE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("range", re.compile(rf"\b(?:between|from|priced|price)\s+{_AMOUNT}\s*(?:and|to|-)\s*{_AMOUNT}")),
    ("range", re.compile(rf"(?:(?<=\s)|^){_CURRENCY}\s*(\d{{1,7}}(?:[.,]\d{{1,2}})?)\s*(?:-|to)\s*{_AMOUNT}")),
    ("max", re.compile(rf"{_AMOUNT}\s+(?:or|and)\s+(?:less|under|below|cheaper)\b")),
    ("min", re.compile(rf"{_AMOUNT}\s+(?:or|and)\s+(?:more|over|above|up)\b")),
    (
        "max",
        re.compile(
            rf"(?:\b(?:under|below|less\s+than|lower\s+than|cheaper\s+than|up\s*to|max(?:imum)?|at\s+most"
            rf"|within|no\s+more\s+than|not\s+more\s+than)|<=?)\s*{_AMOUNT}"
        ),
    ),
    (
        "min",
        re.compile(
            rf"(?:\b(?:over|above|more\s+than|greater\s+than|at\s+least|min(?:imum)?|from|starting\s+at)|>=?)"
            rf"\s*{_AMOUNT}"
        ),
    ),
)
_POSSESSIVE = re.compile(r"(\w)'s?(?=\s|$)")  # men's -> men, ladies' -> ladies
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class PriceRange:
    min_price: float | None = None
    max_price: float | None = None


@dataclass(frozen=True)
class UnderstoodQuery:
    original: str
    text: str  # what to embed: price phrases out, spelling corrected; never empty
    corrected: str | None  # `text` when a word was corrected, else None
    price: PriceRange
    colours: tuple[str, ...]  # catalog colours the words name, as the catalog spells them
    audience: str | None  # "men", "women", "girls", "boys" or "kids"
    keyword: KeywordQuery
    corrections: dict[str, str] = field(default_factory=dict)
    excluded_colours: tuple[str, ...] = ()  # catalog colours the words rule out ("not black")
    excluded_words: tuple[str, ...] = ()  # other words ruled out ("without heels" -> heels)
    product_type: str | None = None  # a catalog type guessed from the words' meaning (`with_type`)
    read_as: dict[str, tuple[str, ...]] = field(default_factory=dict)  # dictionary words -> catalog forms


@dataclass(frozen=True)
class Weights:
    """Relative importance of the kinds of term group (tuned on loadtests/relevance, dev split)."""

    words: float = 1.0
    expansions: float = 1.0
    # A stated colour or audience weighs more than its rarity alone says: a shopper who says 'red' or 'for
    # women' means it, even though 'red' and 'women' are common words.
    colour: float = 3.5
    audience: float = 5.0
    guessed_type: float = 1.0  # a catalog type the words name none of, guessed from their meaning
    kinds: float = 1.0  # what a word only the dictionary knows is a kind of ('cagoule' -> jacket)


def understand(
    query: str,
    vocabulary: Vocabulary,
    *,
    weights: Weights = Weights(),
    colour_names: ColourLexicon | None = None,
    dictionary: Collection[str] = frozenset(),
    shop_words: ShopWords | None = None,
) -> UnderstoodQuery:
    normalised = _normalise(query)
    price, text = _extract_price(normalised)
    words = _WORD.findall(text.replace("-", " "))
    shades = colour_names.shades_for(vocabulary.colours) if colour_names is not None else {}
    corrections = _corrections(words, vocabulary, shades, dictionary, shop_words)
    tokens = _join_spellings([corrections.get(word, word) for word in words])
    # The encoder reads the shopper's own words ('t-shirt', not the keyword leg's 'tshirt'), less the price
    # phrase, with misspelt words replaced; untouched when there was nothing to take out or correct.
    embed_text = query.strip()
    if text != normalised or corrections:
        embed_text = _replace_words(text, corrections) or normalised
    tokens, negated = _negations(tokens, vocabulary, shades)
    if negated:
        embed_text = " ".join(tokens) or embed_text  # what is not wanted never reaches the encoder
    colours, colour_spans = _colours(tokens, vocabulary, shades)
    audience = next((AUDIENCE_WORDS[token] for token in tokens if token in AUDIENCE_WORDS), None)

    groups: list[TermGroup] = []
    if colours:
        colour_forms = _known(_dedupe(colour.lower() for colour in colours), vocabulary)
        if colour_forms:
            weight = weights.colour * vocabulary.idf(colour_forms)
            groups.append(TermGroup(colour_forms, weight=weight, admits=False, attribute=True))
    if audience is not None:
        audience_forms = _known(AUDIENCES[audience], vocabulary)
        if audience_forms:
            weight = weights.audience * vocabulary.idf(audience_forms)
            groups.append(TermGroup(audience_forms, weight=weight, admits=False, attribute=True))
    rest = [
        token
        for index, token in enumerate(tokens)
        if index not in colour_spans and token not in AUDIENCE_WORDS and token not in STOPWORDS
    ]
    word_groups, unmatched, read_as = _word_groups(rest, vocabulary, weights, shop_words, dictionary)
    groups.extend(word_groups)
    excluded_colours, excluded_words, unwanted = _unwanted(negated, vocabulary, weights, shades, colours)
    groups.extend(unwanted)
    return UnderstoodQuery(
        original=query,
        text=embed_text,
        corrected=embed_text if corrections else None,
        price=price,
        colours=colours,
        audience=audience,
        keyword=KeywordQuery(tuple(groups), partial=unmatched > 0),
        corrections=corrections,
        excluded_colours=excluded_colours,
        excluded_words=excluded_words,
        read_as=read_as,
    )


def type_words(type_names: Iterable[str]) -> frozenset[str]:
    """Every word of the catalog's type names, singular and plural ('Flip Flops' -> flip, flips, flop...)."""
    return frozenset(form for name in type_names for word in name.lower().split() for form in _inflections(word))


def names_a_type(understood: UnderstoodQuery, words: frozenset[str]) -> bool:
    """Whether a wanted word group of the query is, or stands for, a word of a catalog type name."""
    return any(
        word in words for group in understood.keyword.wanted if not group.attribute for form in group.forms
        for word in form.split()
    )  # fmt: skip


def with_type(
    understood: UnderstoodQuery, type_name: str, vocabulary: Vocabulary, *, weights: Weights = Weights()
) -> UnderstoodQuery:
    """The query asking for a catalog type too (domain/product_types.py guessed it from the words' meaning)."""
    forms = _known(_variants(type_name.lower()), vocabulary)
    if not forms:
        return understood
    group = _group(forms, vocabulary, weight=weights.guessed_type)
    keyword = KeywordQuery((*understood.keyword.groups, group), partial=understood.keyword.partial)
    return replace(understood, keyword=keyword, product_type=type_name)


def merge_filters(
    explicit: SearchFilters | None, understood: UnderstoodQuery
) -> tuple[SearchFilters | None, dict[str, Any]]:
    """The request's filters plus the price the words state; an explicit bound always wins.

    Returns the filters to search with and the inferred ones that were applied (for `interpretation`).
    """
    applied: dict[str, Any] = {}
    base = explicit.model_dump(exclude_none=True) if explicit is not None else {}
    for name, value in (("min_price", understood.price.min_price), ("max_price", understood.price.max_price)):
        if value is not None and name not in base:
            applied[name] = value
    if not applied:
        return explicit, {}
    merged = {**base, **applied}
    low, high = merged.get("min_price"), merged.get("max_price")
    if low is not None and high is not None and low > high:
        return explicit, {}  # the words contradict the request's own bound: the request wins
    return SearchFilters(**merged), applied


# --- steps --------------------------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'").replace("`", "'")
    text = _POSSESSIVE.sub(r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def _amount(raw: str) -> float:
    return float(raw.replace(",", "."))


def _extract_price(text: str) -> tuple[PriceRange, str]:
    low: float | None = None
    high: float | None = None
    for kind, pattern in _PRICE_PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        values = [_amount(group) for group in match.groups() if group is not None]
        if kind == "range" and len(values) == 2 and low is None and high is None:
            low, high = min(values), max(values)
        elif kind == "max" and high is None:
            high = values[0]
        elif kind == "min" and low is None:
            low = values[0]
        else:
            continue
        text = (text[: match.start()] + " " + text[match.end() :]).strip()
    if low is not None and high is not None and low > high:
        low, high = high, low
    text = re.sub(rf"\s*{_CURRENCY}\s*", " ", text)
    return PriceRange(low, high), re.sub(r"\s+", " ", text).strip()


def _join_spellings(tokens: list[str]) -> list[str]:
    """Rewrite 't shirt', 'flipflops', 'hand bag'... to one canonical spelling (domain/synonyms.py)."""
    out: list[str] = []
    index = 0
    while index < len(tokens):
        for size in range(min(_SPELLING_SPAN, len(tokens) - index), 0, -1):
            phrase = " ".join(tokens[index : index + size])
            if phrase in SPELLINGS:
                out.extend(SPELLINGS[phrase].split())
                index += size
                break
        else:
            out.append(tokens[index])
            index += 1
    return out


_SYNONYM_WORDS = frozenset(
    word for key, expansions in SYNONYMS.items() for phrase in (key, *expansions) for word in phrase.split()
)
_SYNONYM_WORDS_BY_LENGTH = Vocabulary(words=dict.fromkeys(_SYNONYM_WORDS, 0)).words_by_length
_SYNONYM_SPAN = longest_key(SYNONYMS)  # how many words a synonym phrase may have
_SPELLING_SPAN = longest_key(SPELLINGS)
_SPELT_AS: dict[str, list[str]] = {}  # canonical spelling -> the other spellings ('tshirt' -> 't shirt', ...)
for _other, _canonical in SPELLINGS.items():
    _SPELT_AS.setdefault(_canonical, []).append(_other)


def _corrections(
    words: list[str],
    vocabulary: Vocabulary,
    shades: Mapping[str, object],
    dictionary: Collection[str],
    shop_words: ShopWords | None,
) -> dict[str, str]:
    if not vocabulary.words:
        return {}
    corrections: dict[str, str] = {}
    for word in words:
        # 'mustard' is a colour, not a misspelt 'mustang'; 'keep' a word of the language, not a misspelt 'deep'
        if word in shades or word in dictionary or (shop_words is not None and shop_words.base_form(word)):
            continue
        replacement = _correction(word, vocabulary)
        if replacement is not None:
            corrections[word] = replacement
    return corrections


def _replace_words(text: str, replacements: dict[str, str]) -> str:
    for word, replacement in replacements.items():
        text = re.sub(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", replacement, text)
    return text.strip()


def _correction(token: str, vocabulary: Vocabulary) -> str | None:
    if (
        len(token) < MIN_CORRECTABLE_LENGTH
        or not token.isalpha()
        or token in vocabulary.words
        or token in _SYNONYM_WORDS
        or token in COLOURS
        or token in SPELLINGS
        or token in AUDIENCE_WORDS
        or token in NEGATIONS
        or token in STOPWORDS
        or token in PROTECTED_WORDS
        or _inflections(token) & vocabulary.words.keys()
    ):
        return None
    limit = 1 if len(token) < LONG_WORD else 2
    best: tuple[int, int, str] | None = None  # (distance, -document count, word)
    for word in _candidates(vocabulary, len(token), limit):
        distance = DamerauLevenshtein.distance(token, word, score_cutoff=limit)
        # Two edits only keeping the first letter: typos rarely touch it, and two free edits reach far.
        if distance > limit or (distance == 2 and word[0] != token[0]):
            continue
        rank = (distance, -vocabulary.words.get(word, 0), word)
        if best is None or rank < best:
            best = rank
    return None if best is None else best[2]


def _candidates(vocabulary: Vocabulary, length: int, limit: int) -> Iterable[str]:
    """Catalog words, their singulars ('handbags' -> 'handbag') and the synonym table's words, of a length
    within `limit` of the typo's (a plural one longer still, for its singular)."""
    for size in range(length - limit, length + limit + 2):
        for word in (*vocabulary.words_by_length.get(size, ()), *_SYNONYM_WORDS_BY_LENGTH.get(size, ())):
            forms = (word, word[:-1]) if word.endswith("s") and not word.endswith("ss") else (word,)
            for form in forms:
                if abs(len(form) - length) <= limit and len(form) >= MIN_CORRECTABLE_LENGTH - 1:
                    yield form


def _colours(
    tokens: Sequence[str], vocabulary: Vocabulary, shades: Mapping[str, tuple[str, ...]]
) -> tuple[tuple[str, ...], set[int]]:
    """Catalog colours the tokens name: whole names first ('navy blue' -> Navy Blue), then single words, each
    naming every colour containing it ('blue' -> Blue, Navy Blue; 'navy' -> Navy Blue) or the colours a
    shopper's word stands for ('gray' -> Grey, through domain/synonyms.py), then the colour library's names
    ('crimson' -> Red, 'bottle green' -> Green; domain/colour_names.py). A library name of one word that the
    catalog uses for something else ('denim') is left to the keyword leg."""
    found: list[str] = []
    used: set[int] = set()
    names = sorted(vocabulary.colours, key=lambda name: -len(name.split()))
    for name in names:
        words = name.lower().split()
        if len(words) < 2:  # one-word names are matched below, with every name containing the word
            continue
        for start in range(len(tokens) - len(words) + 1):
            span = set(range(start, start + len(words)))
            if list(tokens[start : start + len(words)]) == words and not span & used:
                found.append(name)
                used |= span
    for size in range(LONGEST_NAME, 1, -1):  # library phrases: 'bottle green', 'hot pink', 'dusty rose'
        for start in range(len(tokens) - size + 1):
            span = set(range(start, start + size))
            phrase = " ".join(tokens[start : start + size])
            if span & used or phrase not in shades:
                continue
            own = _catalog_colours_named(tokens[start : start + size], names)
            found.extend(own or shades[phrase])  # 'light blue' stays Blue/Navy Blue, as before
            used |= span
    for index, token in enumerate(tokens):
        if index in used or token in VAGUE_COLOUR_WORDS:
            continue
        matches = _catalog_colours_named([token], names)
        if not matches and token in shades and token not in vocabulary.words and _free_word(token):
            matches = [name for name in shades[token] if name in names]
        if matches:
            found.extend(matches)
            used.add(index)
    return tuple(_dedupe(found)), used


def _catalog_colours_named(tokens: Sequence[str], names: Sequence[str]) -> list[str]:
    named = {colour for token in tokens for colour in COLOURS.get(token, (token,))}
    return [name for name in names if named & set(name.lower().split())]


def _free_word(token: str) -> bool:
    """Not a word with a job of its own in a query (who it is for, a filler, a synonym-table word)."""
    return not (
        token in AUDIENCE_WORDS
        or token in STOPWORDS
        or token in PROTECTED_WORDS
        or token in _SYNONYM_WORDS
        or token in VAGUE_COLOUR_WORDS
    )


def _negations(
    tokens: list[str], vocabulary: Vocabulary, shades: Mapping[str, tuple[str, ...]]
) -> tuple[list[str], list[list[str]]]:
    """The tokens less the negated phrases, and the negated phrases ('tshirt not black' -> [tshirt], [[black]]).

    A negation word ('not', 'without', 'other than'...) rules out what follows it, after any filler ('not a
    backpack', 'not for sports'): one word, or two when they name one thing ('navy blue', 'flip flops',
    'sports shoes'); 'non' only ever the one word after it ('non sports shoes' still asks for shoes).
    """
    kept: list[str] = []
    negated: list[list[str]] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        cue = 0
        if token in NEGATIONS:
            cue = 1
        elif tuple(tokens[index : index + 2]) in NEGATION_PHRASES:
            cue = 2
        if not cue:
            kept.append(token)
            index += 1
            continue
        start = index + cue
        while start < len(tokens) and tokens[start] in STOPWORDS and tokens[start] not in NEGATIONS:
            start += 1
        if start >= len(tokens) or tokens[start] in AUDIENCE_WORDS or tokens[start] in NEGATIONS:
            index += cue  # nothing that can be ruled out follows: drop the cue alone
            continue
        size = 1
        pair = " ".join(tokens[start : start + 2])
        if token != "non" and start + 1 < len(tokens) and _one_thing(pair, vocabulary, shades):
            size = 2
        negated.append(tokens[start : start + size])
        index = start + size
    return kept, negated


def _one_thing(phrase: str, vocabulary: Vocabulary, shades: Mapping[str, tuple[str, ...]]) -> bool:
    return (
        phrase in SYNONYMS
        or phrase in shades
        or phrase in {colour.lower() for colour in vocabulary.colours}
        or phrase in _SPELT_AS
        or any(phrase in forms for forms in SYNONYMS.values())
    )


def _unwanted(
    negated: list[list[str]],
    vocabulary: Vocabulary,
    weights: Weights,
    shades: Mapping[str, tuple[str, ...]],
    wanted_colours: tuple[str, ...],
) -> tuple[tuple[str, ...], tuple[str, ...], list[TermGroup]]:
    """Groups that lower the score of what the negated phrases name: a colour in the attributes field, other
    words wherever they occur; a colour the shopper also asks for ('blue not navy blue') keeps its own."""
    colours: list[str] = []
    words: list[str] = []
    for phrase in negated:
        named, _ = _colours(phrase, vocabulary, shades)
        if named:
            colours.extend(colour for colour in named if colour not in wanted_colours)
        else:
            words.extend(phrase)
    groups: list[TermGroup] = []
    colour_forms = _known(_dedupe(colour.lower() for colour in colours), vocabulary)
    if colour_forms:
        weight = weights.colour * vocabulary.idf(colour_forms)
        groups.append(TermGroup(colour_forms, weight=-weight, admits=False, attribute=True))
    word_groups, _, _ = _word_groups([word for word in words if word not in STOPWORDS], vocabulary, weights)
    groups.extend(
        TermGroup(group.forms, weight=-abs(group.weight), admits=False, excludes=group.excludes)
        for group in word_groups
    )
    return tuple(_dedupe(colours)), tuple(words), groups


def _word_groups(
    tokens: list[str],
    vocabulary: Vocabulary,
    weights: Weights,
    shop_words: ShopWords | None = None,
    dictionary: Collection[str] = frozenset(),
) -> tuple[list[TermGroup], int, dict[str, tuple[str, ...]]]:
    """One group per word or synonym phrase, how many words found no form in the catalog, and what the words
    neither the catalog nor the synonym table knows were read as through the dictionary (`_kinds_of`)."""
    groups: list[TermGroup] = []
    unmatched = 0
    read_as: dict[str, tuple[str, ...]] = {}
    # Words neither the catalog nor the table knows: only phrases with one of them are looked up.
    strange = [shop_words is not None and not _knows(token, vocabulary) for token in tokens]
    index = 0
    while index < len(tokens):
        meaning = None
        if shop_words is not None and any(strange[index : index + shop_words.longest]):
            meaning = _kinds_of(tokens, index, strange, vocabulary, shop_words, dictionary)
        if meaning is not None and meaning[0] > 1:  # a dictionary phrase with a word the catalog lacks
            size, phrase, forms = meaning
            groups.append(_group(forms, vocabulary, weight=weights.kinds))
            read_as[phrase] = forms
            index += size
            continue
        for size in range(min(_SYNONYM_SPAN, len(tokens) - index), 0, -1):
            phrase = " ".join(tokens[index : index + size])
            if phrase in SYNONYMS:
                own = _known(_variants(phrase), vocabulary)
                extra = _known([form for alt in SYNONYMS[phrase] for form in _variants(alt)], vocabulary)
                forms = tuple(_dedupe([*own, *extra]))
                if forms:
                    weight = weights.words if own else weights.expansions
                    groups.append(_group(forms, vocabulary, weight=weight))
                else:
                    unmatched += 1
                index += size
                break
        else:
            forms = _known(_variants(tokens[index]), vocabulary)
            if forms:
                groups.append(_group(forms, vocabulary, weight=weights.words))
            elif meaning is not None:
                groups.append(_group(meaning[2], vocabulary, weight=weights.kinds))
                read_as[meaning[1]] = meaning[2]
            else:
                unmatched += 1
            index += 1
    return groups, unmatched, read_as


def _knows(word: str, vocabulary: Vocabulary) -> bool:
    return word in _SYNONYM_WORDS or bool(_known(_variants(word), vocabulary))


def _kinds_of(
    tokens: list[str],
    index: int,
    strange: list[bool],
    vocabulary: Vocabulary,
    shop_words: ShopWords,
    dictionary: Collection[str],
) -> tuple[int, str, tuple[str, ...]] | None:
    """The longest dictionary phrase at `index` with a word neither the catalog nor the synonym table knows
    ('cagoule', 'pedal pushers'), and the catalog's forms of what it is a kind of: in the commonest of its shop
    senses that the catalog has a kind of, the nearest level of its synonyms and ancestors of which the catalog
    has a form (directly or through the synonym table).

    When another word of the query names a product itself ('derby shoes'), the phrase is read only as a kind
    of that product: there it is a modifier, and its own sense ('derby', a hat) is another thing."""
    for size in range(min(shop_words.longest, len(tokens) - index), 0, -1):
        if not any(strange[index : index + size]):
            continue  # words the catalog or the table already knows are left alone
        phrase = " ".join(tokens[index : index + size])
        others = tokens[:index] + tokens[index + size :]
        named = {form for word in others if (form := shop_words.base_form(word)) is not None}
        for levels in shop_words.kinds(phrase, everyday=phrase in dictionary):
            if named and not named & {lemma for lemmas in levels for lemma in lemmas}:
                continue
            for lemmas in levels:
                forms = _dedupe(form for lemma in lemmas for form in _catalog_forms(lemma, vocabulary))
                if forms:
                    return size, phrase, tuple(forms)
    return None


def _catalog_forms(lemma: str, vocabulary: Vocabulary) -> tuple[str, ...]:
    """A lemma's forms the catalog has, the synonym table's expansions of it included ('rucksack' -> backpack)."""
    expansions = SYNONYMS.get(lemma, ())
    return _known([*_variants(lemma), *(form for alt in expansions for form in _variants(alt))], vocabulary)


def _group(forms: tuple[str, ...], vocabulary: Vocabulary, *, weight: float) -> TermGroup:
    known = _known((other for form in forms for other in NOT_THE_SAME.get(form, ())), vocabulary)
    excludes = tuple(form for form in known if form not in forms)
    return TermGroup(forms, weight=weight * vocabulary.idf(forms, excludes), excludes=excludes)


def _inflections(word: str) -> set[str]:
    """The word with its English plural or singular (only ever used filtered by a vocabulary)."""
    forms = {word, word + "s", word + "es"}
    if word.endswith("ies") and len(word) > 4:
        forms.add(word[:-3] + "y")
    if word.endswith("y") and len(word) > 2:
        forms.add(word[:-1] + "ies")
    if word.endswith("es") and len(word) > 3:
        forms.add(word[:-2])
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        forms.add(word[:-1])
    return forms


def _variants(phrase: str) -> list[str]:
    """A phrase, its plural/singular (inflecting the last word) and its other spellings, the phrase first."""
    head, _, last = phrase.rpartition(" ")
    prefix = f"{head} " if head else ""
    inflected = _dedupe([phrase, *sorted(prefix + form for form in _inflections(last))])
    return _dedupe([*inflected, *(other for form in inflected for other in _SPELT_AS.get(form, ()))])


def _known(forms: Iterable[str], vocabulary: Vocabulary) -> tuple[str, ...]:
    if not vocabulary.words:  # no vocabulary yet: trust the forms as they are
        return tuple(form for form in _dedupe(forms) if is_form(form))
    return tuple(form for form in _dedupe(forms) if is_form(form) and vocabulary.knows(form))


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
