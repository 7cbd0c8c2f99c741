"""Where log records go when the command line runs: stderr, one line each, no floods.

Client libraries log through the package's loggers (`lakehouse.kafka` carries librdkafka's lines).
Without --debug only warnings and errors show, and each distinct message once: a broker that is
down makes librdkafka repeat the same line every few hundred milliseconds. With --debug every
record shows.
"""

from __future__ import annotations

import logging
import re
import sys

_DIGITS = re.compile(r"\d+")


class OncePerMessage(logging.Filter):
    """Pass the first record of each message; repeats (numbers aside) are dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = _DIGITS.sub("#", f"{record.name}:{record.getMessage()}")
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def configure(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not debug:
        handler.addFilter(OncePerMessage())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("lakehouse").setLevel(logging.DEBUG if debug else logging.WARNING)
