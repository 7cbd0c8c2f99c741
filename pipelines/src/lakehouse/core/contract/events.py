"""What a valid user event is: its types, its fields, the formats accepted for ids and times."""

from __future__ import annotations

EVENT_TYPES = ("page_view", "click", "add_to_cart", "purchase", "login", "logout")
# Types that name a product, and the one that is priced.
PRODUCT_EVENT_TYPES = ("add_to_cart", "purchase")
PRICED_EVENT_TYPE = "purchase"
DEFAULT_CURRENCY = "USD"

# Top-level fields of the contract, as they arrive (every one optional in the raw record: silver
# decides which are required for which event type).
CONTRACT_FIELDS = (
    "event_id",
    "user_id",
    "event_type",
    "ts",
    "page",
    "source",
    "device",
    "country",
    "product_id",
    "price",
    "quantity",
    "currency",
    "campaign",
)

# Size limits: a bigger record, or one with a longer field, is quarantined (record_too_large,
# field_too_long) instead of reaching silver. Defaults of silver.max_record_bytes and
# silver.max_field_chars; 1 MiB is Kafka's default largest message.
MAX_RECORD_BYTES = 1_048_576
MAX_FIELD_CHARS = 32_768

UUID_RE = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# The timestamp strings the contract accepts: ISO 8601 date, optional time (hour 00-23, seconds
# and fraction optional), optional `Z` or numeric offset. Every engine's string->timestamp cast
# agrees on exactly these (DuckDB and Spark differ on hour 24, zone names, a space before the
# offset), so the contract is defined by this pattern, not by one engine's parser.
TS_RE = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    "([T ]([01][0-9]|2[0-3]):[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,9})?)?(Z|[-+][0-9]{2}(:?[0-9]{2})?)?)?$"
)
# Epoch milliseconds: 11 to 15 digits (1973 .. 33658).
EPOCH_MS_RE = "^[0-9]{11,15}$"
# A product id is text: sources carry SKUs as well as the integer ids of the product
# dimension. Any text up to 128 characters without control characters is one; a nested JSON
# value (text starting with `{` or `[`, which is how an object or array reads as text) is not.
PRODUCT_ID_RE = "^[^{\\[\\x00-\\x1f\\x7f][^\\x00-\\x1f\\x7f]{0,127}$"
# The product dimension's ids are integers: a product id of that form is conformed to it
# (silver.events.product_key), any other (a SKU) keeps only its text.
PRODUCT_KEY_RE = "^[0-9]{1,18}$"
