"""The click model (domain/click_model.py): position bias corrected, smoothed, weighted by what the shopper did."""

from __future__ import annotations

import pytest

from domain.click_model import ClickModel, LearnedQuery, ShopperChoice, learn, rerank
from domain.fusion import Fused
from domain.interactions import InteractionType

CLICK, CART, PURCHASE = InteractionType.CLICK, InteractionType.ADD_TO_CART, InteractionType.PURCHASE


def choices(query: str, product_id: int, shoppers: range, *, position: int | None, kind=CLICK, product_type=None):
    return [
        ShopperChoice(query, product_id, shopper, kind, position, product_type=product_type) for shopper in shoppers
    ]


def test_a_product_chosen_far_down_gains_more_than_one_chosen_at_the_top_for_the_same_count() -> None:
    log = [
        *choices("black heels", 1, range(1, 4), position=0),  # rank 1: three clicks where everyone looks
        *choices("black heels", 8, range(4, 7), position=7),  # rank 8: three clicks where few shoppers look
    ]
    learned = learn(log).for_query("black heels")
    assert learned is not None
    assert learned.attractiveness[8] > learned.attractiveness[1]
    assert learned.attractiveness[8] == pytest.approx(8 * learned.attractiveness[1])  # eta 1: rank 8 counts 8x


def test_eta_sets_how_steeply_examination_falls_and_far_ranks_are_capped() -> None:
    flat = ClickModel(eta=0.0)
    assert flat.vote(CLICK, 7) == flat.vote(CLICK, 0) == 1.0  # no position bias assumed: no correction
    model = ClickModel(eta=0.5, max_rank=20)
    assert model.vote(CLICK, 3) == pytest.approx(2.0)  # rank 4
    assert model.vote(CLICK, 500) == model.vote(CLICK, 19) == pytest.approx(20**0.5)
    assert model.vote(CLICK, None) == 1.0  # no position sent: counted as the top, never inflated


def test_interaction_weights_a_purchase_says_more_than_a_cart_add_more_than_a_click() -> None:
    log = [
        *choices("tote", 1, range(1, 3), position=2, kind=CLICK),
        *choices("tote", 2, range(3, 5), position=2, kind=CART),
        *choices("tote", 3, range(5, 7), position=2, kind=PURCHASE),
        *choices("tote", 4, range(7, 9), position=2, kind=InteractionType.VIEW),  # not a choice
    ]
    learned = learn(log).for_query("tote")
    assert learned is not None
    boost = learned.attractiveness
    assert boost[3] > boost[2] > boost[1] > 0 and 4 not in boost
    assert boost[2] == pytest.approx(2 * boost[1]) and boost[3] == pytest.approx(3 * boost[1])


def test_a_shopper_counts_once_per_product_at_their_strongest_choice() -> None:
    spam = [ShopperChoice("boots", 1, 7, CLICK, 0) for _ in range(50)]  # one shopper, fifty clicks
    others = [*choices("boots", 2, range(20, 23), position=0)]
    learned = learn([*spam, *others]).for_query("boots")
    assert learned is not None and learned.attractiveness[2] > learned.attractiveness[1]
    bought = learn([ShopperChoice("boots", 1, 7, CLICK, 0), ShopperChoice("boots", 1, 7, PURCHASE, 0), *others])
    clicked = learn([ShopperChoice("boots", 1, 7, CLICK, 0), *others])
    assert bought.queries["boots"].attractiveness[1] == pytest.approx(3 * clicked.queries["boots"].attractiveness[1])


def test_priors_a_handful_of_clicks_teaches_little_and_too_few_shoppers_nothing() -> None:
    assert learn(choices("sandals", 1, range(1, 3), position=9)).queries == {}  # two shoppers: below min_shoppers
    few = learn(choices("sandals", 1, range(1, 4), position=0)).queries["sandals"]
    many = learn(choices("sandals", 1, range(1, 61), position=0)).queries["sandals"]
    assert few.attractiveness[1] == pytest.approx(3 / 8)  # confidence N / (N + 5): three shoppers
    assert many.attractiveness[1] == pytest.approx(60 / 65)
    assert few.attractiveness[1] < many.attractiveness[1] < 1.0
    # Within a query: one shopper's choice counts half (n / (n + 1)), so it does not rival a product many chose.
    log = [*choices("caps", 1, range(1, 11), position=0), ShopperChoice("caps", 2, 99, CLICK, 0)]
    caps = learn(log).queries["caps"]
    assert caps.attractiveness[2] == pytest.approx(caps.attractiveness[1] * 0.5 / (10 * 10 / 11))


def test_queries_are_learned_apart() -> None:
    learned = learn(
        [*choices("red dress", 1, range(1, 5), position=3), *choices("blue dress", 2, range(1, 5), position=3)]
    )
    assert set(learned.queries["red dress"].attractiveness) == {1}
    assert set(learned.queries["blue dress"].attractiveness) == {2}
    assert learned.for_query("green dress") is None
    busiest = learn(
        [*choices("red dress", 1, range(1, 5), position=0), *choices("blue dress", 2, range(1, 4), position=0)],
        ClickModel(max_queries=1),
    )
    assert set(busiest.queries) == {"red dress"}  # the table keeps the queries most shoppers acted on


def test_a_query_whose_shoppers_mostly_choose_one_type_learns_it() -> None:
    swim = [
        choice
        for pid in (1, 2)
        for choice in choices("cozzie", pid, range(pid * 10, pid * 10 + 3), position=4, product_type="Swimwear")
    ]
    stray = choices("cozzie", 3, range(100, 102), position=0, product_type="Tshirts")
    assert learn([*swim, *stray]).queries["cozzie"].product_type == "Swimwear"
    split = choices("cozzie", 4, range(200, 206), position=4, product_type="Shorts")
    assert learn([*swim, *split]).queries["cozzie"].product_type is None  # no type has 60% of the mass
    assert (
        learn(choices("wellies", 1, range(1, 5), position=4, product_type="Boots")).queries["wellies"].product_type
        is None
    )  # 4 < 5 shoppers


def test_the_version_moves_with_what_the_search_would_do_not_with_every_click() -> None:
    base = [*choices("loafers", 1, range(1, 30), position=0), *choices("loafers", 2, range(40, 50), position=0)]
    one_more = [*base, ShopperChoice("loafers", 2, 51, CLICK, 0)]
    many_more = [*base, *choices("loafers", 2, range(60, 90), position=0)]
    version = learn(base).queries["loafers"].version
    assert learn(one_more).queries["loafers"].version == version
    assert learn(many_more).queries["loafers"].version != version


def test_rerank_raises_learned_products_by_a_bounded_boost_and_keeps_the_rest_in_order() -> None:
    fused = Fused(ids=[10, 11, 12, 13, 14], scores=[1.3, 1.2, 1.1, 0.9, 0.2])
    learned = LearnedQuery({13: 1.0, 14: 0.9, 99: 1.0}, shoppers=40)
    out = rerank(fused, learned, weight=0.5)
    assert out.ids == [13, 10, 11, 12, 14]  # 13: 0.9 + 0.5; 14: 0.2 + 0.45, still last
    assert out.scores == pytest.approx([1.4, 1.3, 1.2, 1.1, 0.65])
    assert 99 not in out.ids  # never pulled in from outside the list: it did not match this search
    tie = rerank(Fused(ids=[1, 2], scores=[1.0, 0.5]), LearnedQuery({2: 1.0}, shoppers=9), weight=0.5)
    assert tie.ids == [1, 2]  # equal scores keep the fused order
    assert rerank(fused, LearnedQuery({}, shoppers=3), weight=0.5) is fused
