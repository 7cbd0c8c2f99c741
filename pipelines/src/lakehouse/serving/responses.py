"""The API's answers that are not data: one-line JSON errors and conditional-request matching."""

from __future__ import annotations

from starlette.responses import Response

from lakehouse.serving import formats


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    one_line = " ".join(message.split())
    return Response(
        formats.dumps({"error": one_line, "status": status}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison against any of the listed tags, or `*`."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag.removeprefix("W/") in (t.removeprefix("W/") for t in tags)
