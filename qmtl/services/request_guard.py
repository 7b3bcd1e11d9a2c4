"""An ASGI middleware that refuses input no handler should ever see, with 400 ``E_SCHEMA``.

Shared by the gateway and the world service, in front of every route, so no route can forget it:

* the path or the query string holds a control character (``%00``, ``%0A``, ``%7F``...) or a ``.``/``..``
  segment, or an encoded slash (``%2F``, checked before decoding): ids never contain them, a NUL byte
  reaching PostgreSQL is a server error, and an encoded slash would re-route a proxied path;
* a JSON body nested deeper than ``MAX_JSON_DEPTH``, or holding an integer outside signed 64 bits (what
  every SQL backend stores), a non-finite number (``1e309``, ``NaN``), or a NUL character in any string
  or key.  Python's own parser answers the first with ``RecursionError`` and a 5000-digit integer with
  ``ValueError``; both are caught here and named.

Every body that parses as JSON is checked, whatever its ``Content-Type`` (a label must not be a way
around the guard); ``check_document`` applies the same rules to a document parsed another way (the
world service's YAML policies).  Malformed JSON is let through: each app reports it in its own words.
The body arrives already read by ``BodySizeLimit`` (so it is at most the size limit) and is replayed to
the app unchanged.

The body is parsed once: the checked document is left in the request's scope (``checked_json``), so a
route that reads its body itself (the gateway's ``POST /strategies``) validates it without parsing the
text a second time.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from pydantic_core import from_json

from .asgi import (ClientDisconnected, HttpMiddleware, Receive, Scope, Send, read_body, replay_body,
                   send_json)
from .errors import error_body

MAX_JSON_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
# Where the checked document is left in the ASGI scope (the body's parse, reused by the route).
_SCOPE_KEY = "qmtl.checked_json"
# ``checked_json``'s answer when the guard left no document for this body.
NOT_CHECKED = object()
_MALFORMED = object()  # ``check_json``'s answer for text that is not JSON


class InputError(ValueError):
    """Input refused before any handler; the message names where."""


class RequestGuard(HttpMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(receive)
        except ClientDisconnected:
            return
        receive = replay_body(body, receive)
        try:
            check_target(scope.get("raw_path") or scope["path"].encode(), scope.get("query_string", b""))
            # Whatever the Content-Type says: a handler may read the body as JSON anyway (the gateway's
            # POST /strategies does, YAML parsers take JSON too), so a label must not skip the check.
            if body:
                doc = check_json(body)
                if doc is not _MALFORMED:
                    scope[_SCOPE_KEY] = (body, doc)
        except InputError as exc:
            await send_json(send, 400, error_body("E_SCHEMA", str(exc)))
            return
        await self.app(scope, receive, send)


def check_target(raw_path: bytes, query: bytes) -> None:
    """Refuse control characters and dot segments in the (percent-decoded) path and query."""
    # Before decoding: an encoded slash would become a path separator once decoded, so a proxied
    # ``/worlds/a%2Fb`` could be routed as ``/worlds/a/b`` by whichever hop decodes it.  No id holds a
    # slash; refused on every service, so the gateway never forwards one.
    if b"%2f" in raw_path.lower():
        raise InputError("path: an encoded slash (%2F) is not allowed")
    path = unquote_to_bytes(raw_path)
    if _CONTROL.search(path):
        raise InputError("path: contains a control character")
    if any(seg in (b".", b"..") for seg in path.split(b"/")):
        raise InputError("path: '.' and '..' segments are not allowed")
    if _CONTROL.search(unquote_to_bytes(query.replace(b"+", b" "))):
        raise InputError("query: contains a control character")


def checked_json(scope: Scope, body: bytes) -> Any:
    """The document ``RequestGuard`` parsed and checked from exactly ``body``, or ``NOT_CHECKED`` (not
    JSON, malformed, or another body): then the caller parses the text itself."""
    seen = scope.get(_SCOPE_KEY)
    return seen[1] if seen is not None and seen[0] == body else NOT_CHECKED


def check_json(body: bytes) -> Any:
    """Parse ``body`` and walk it; raise ``InputError`` for what the module docstring lists.

    Returns the parsed document, or ``_MALFORMED`` when the text is not JSON (the app says so).  The
    common case takes pydantic-core's parser and a walk that builds no paths; anything that parser
    refuses (deep nesting, huge integers, ``NaN``, other encodings) and any document the quick walk
    does not pass goes the exact way below, so every refusal is named as it always was.
    """
    try:
        doc = from_json(body, allow_inf_nan=False)
    except ValueError:
        pass
    else:
        if _clean(doc, 0):
            return doc
    try:
        doc = json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise InputError(f"body: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except InputError:
        raise
    except json.JSONDecodeError:
        return _MALFORMED  # malformed: the app says so in its own words
    except ValueError as exc:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise InputError(f"body: number out of range: {exc}") from None
    except UnicodeDecodeError:
        return _MALFORMED
    _walk(doc)
    return doc


def _clean(value: Any, depth: int) -> bool:
    """True when ``_walk`` would find nothing in ``value`` (same rules, no paths built).  Strings, the
    commonest members, are checked in the loops without a call each."""
    if depth > MAX_JSON_DEPTH:
        return False
    t = type(value)
    if t is str:
        return "\x00" not in value
    if t is dict:
        for key, item in value.items():
            if "\x00" in key or (("\x00" in item) if type(item) is str else not _clean(item, depth + 1)):
                return False
        return depth < MAX_JSON_DEPTH or not value
    if t is list:
        for item in value:
            if ("\x00" in item) if type(item) is str else not _clean(item, depth + 1):
                return False
        return depth < MAX_JSON_DEPTH or not value
    if t is int:
        return INT64_MIN <= value <= INT64_MAX
    if t is float:
        return math.isfinite(value)
    return t is bool or value is None


def _no_constant(name: str) -> Any:
    raise InputError(f"body: {name} is not a JSON number")


def check_document(doc: Any, where: str = "body") -> None:
    """Apply the JSON body rules to a document parsed some other way (a YAML policy); raise
    ``InputError`` naming where.  YAML anchors may share one container many times over (or contain
    themselves): each container is walked once, so an alias bomb costs no more than its text."""
    _walk(doc, where, seen=set())


def _walk(doc: Any, root: str = "body", seen: set[int] | None = None) -> None:
    stack: list[tuple[Any, str, int]] = [(doc, root, 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InputError(f"{root}: nested deeper than {MAX_JSON_DEPTH} levels (at {where[:200]})")
        if seen is not None and isinstance(value, (dict, list)):
            if id(value) in seen:
                continue
            seen.add(id(value))
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and "\x00" in key:
                    raise InputError(f"{where}: a key contains a NUL character")
                stack.append((item, f"{where}.{key}", depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str):
            if "\x00" in value:
                raise InputError(f"{where}: contains a NUL character")
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise InputError(f"{where}: integer out of range (signed 64 bits)")
        elif isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{where}: number out of range (not finite)")

