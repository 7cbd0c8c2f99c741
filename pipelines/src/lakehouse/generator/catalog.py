"""What the generators draw from: weights, pages, campaigns, products, and the contract's spellings
and currencies."""

from __future__ import annotations

import random
from decimal import Decimal

from lakehouse.core.contract import reference
from lakehouse.core.contract.events import EVENT_TYPES as CONTRACT_EVENT_TYPES

# How often each country and event type occurs (relative weights).
COUNTRY_WEIGHTS_BY_CODE = {
    "US": 30, "GB": 10, "DE": 9, "FR": 7, "PL": 6, "NL": 4, "ES": 5,
    "IT": 4, "SE": 3, "CA": 5, "JP": 4, "BR": 4, "IN": 6, "AU": 3,
}  # fmt: skip
COUNTRY_CODES = tuple(COUNTRY_WEIGHTS_BY_CODE)
COUNTRY_WEIGHTS = tuple(COUNTRY_WEIGHTS_BY_CODE.values())
# code -> (names users type, local currency); names and currencies come from the contract.
COUNTRIES: dict[str, tuple[tuple[str, ...], str]] = {
    code: (
        (*reference.country_names(code), *(n.lower() for n in reference.country_names(code))),
        reference.LOCAL_CURRENCY[code],
    )
    for code in COUNTRY_CODES
}

EVENT_WEIGHTS_BY_TYPE = {
    "page_view": 50,
    "click": 25,
    "add_to_cart": 9,
    "login": 7,
    "logout": 5,
    "purchase": 4,
}
if set(EVENT_WEIGHTS_BY_TYPE) != set(CONTRACT_EVENT_TYPES):
    raise RuntimeError("the generator must weigh exactly the contract's event types")
EVENT_TYPES = tuple(EVENT_WEIGHTS_BY_TYPE)
EVENT_WEIGHTS = tuple(EVENT_WEIGHTS_BY_TYPE.values())
PAGES = ("/", "/home", "/search", "/deals", "/product", "/cart", "/checkout", "/account", "/help", "/blog")


def _as_typed(spellings: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Every spelling the contract maps to a value, plus the value as people also type it:
    capitalised and with stray spaces (silver compares lower-case and trimmed)."""
    return {value: (*keys, value.capitalize(), f" {value} ") for value, keys in spellings.items()}


SOURCE_SPELLINGS = _as_typed(reference.spellings("source"))
SOURCES = tuple(SOURCE_SPELLINGS)
DEVICE_SPELLINGS = _as_typed(reference.spellings("device"))
CAMPAIGNS = (None, None, None, "black_friday", "newsletter_nov", "retargeting", "brand")
CATEGORIES = ("electronics", "books", "home", "garden", "toys", "fashion", "sports", "beauty", "grocery")
SEGMENTS = ("consumer", "small_business", "enterprise", "vip")
ORDER_FLOW = ("placed", "paid", "shipped", "delivered")


def product_base_price(seed: int, product_id: int) -> Decimal:
    """Deterministic USD list price for a product id."""
    rng = random.Random(seed * 7919 + product_id)
    return Decimal(str(round(rng.lognormvariate(3.3, 0.9), 2))).quantize(Decimal("0.01")) + Decimal("0.99")


def product_category(seed: int, product_id: int) -> str:
    return CATEGORIES[random.Random(seed * 104729 + product_id).randrange(len(CATEGORIES))]
