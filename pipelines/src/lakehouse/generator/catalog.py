"""Shared reference values for the generators: countries, currencies, pages, channels, products."""

from __future__ import annotations

import random
from decimal import Decimal

# country code -> (English names users type, local currency)
COUNTRIES: dict[str, tuple[tuple[str, ...], str]] = {
    "US": (("United States", "united states"), "USD"),
    "GB": (("United Kingdom", "united kingdom"), "GBP"),
    "DE": (("Germany", "germany"), "EUR"),
    "FR": (("France",), "EUR"),
    "PL": (("Poland",), "PLN"),
    "NL": (("Netherlands",), "EUR"),
    "ES": (("Spain",), "EUR"),
    "IT": (("Italy",), "EUR"),
    "SE": (("Sweden",), "SEK"),
    "CA": (("Canada",), "CAD"),
    "JP": (("Japan",), "JPY"),
    "BR": (("Brazil",), "BRL"),
    "IN": (("India",), "INR"),
    "AU": (("Australia",), "AUD"),
}
COUNTRY_CODES = tuple(COUNTRIES)
COUNTRY_WEIGHTS = (30, 10, 9, 7, 6, 4, 5, 4, 3, 5, 4, 4, 6, 3)

# Units of local currency per USD, used to price events in local currency (approximate, static).
USD_TO_LOCAL = {
    "USD": Decimal("1"),
    "EUR": Decimal("0.92"),
    "GBP": Decimal("0.79"),
    "PLN": Decimal("3.98"),
    "SEK": Decimal("10.6"),
    "CAD": Decimal("1.37"),
    "JPY": Decimal("151"),
    "BRL": Decimal("5.6"),
    "INR": Decimal("84"),
    "AUD": Decimal("1.52"),
}

EVENT_TYPES = ("page_view", "click", "add_to_cart", "login", "logout", "purchase")
EVENT_WEIGHTS = (50, 25, 9, 7, 5, 4)
PAGES = ("/", "/home", "/search", "/deals", "/product", "/cart", "/checkout", "/account", "/help", "/blog")
SOURCES = ("web", "mobile", "email", "ads", "partner")
SOURCE_SPELLINGS = {
    "web": ("web", "Web", "WEB", " web "),
    "mobile": ("mobile", "Mobile", "mobile_app", "ios", "android"),
    "email": ("email", "Email", "newsletter"),
    "ads": ("ads", "paid", "ppc"),
    "partner": ("partner", "affiliate"),
}
DEVICE_SPELLINGS = {
    "desktop": ("desktop", "Desktop", "pc", "mac"),
    "mobile": ("mobile", "iPhone", "android_phone", "phone"),
    "tablet": ("tablet", "iPad"),
}
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
