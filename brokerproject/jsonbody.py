"""The one place request bodies become JSON: the JSON API (as DRF's parser), the Zoom intake and
Recall's status webhook all parse through `loads`.

Hostile bodies get a MalformedJSON with a message a person can act on, never a 500:
- nesting deeper than MAX_DEPTH (100 000 levels used to raise RecursionError);
- text PostgreSQL refuses: NUL (\\u0000) and lone surrogates (\\ud800 alone cannot be UTF-8).
  `text="reject"` refuses them (the API: the caller can fix the request); `text="strip"` drops
  them from the parsed values (webhooks: the sender will not change, the raw bytes are kept).
Size is bounded before parsing by Django's DATA_UPLOAD_MAX_MEMORY_SIZE.
"""

import json
import re
from typing import Any, Literal

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_DEPTH = 64
_REFUSED_TEXT = re.compile("[\x00\ud800-\udfff]")


class MalformedJSON(ValueError):
    pass


def loads(body: bytes | str, *, text: Literal["reject", "strip"] = "reject") -> Any:
    try:
        data = json.loads(body)
    except RecursionError:
        raise MalformedJSON(f"The JSON body is nested too deeply (at most {MAX_DEPTH} levels).") from None
    except UnicodeDecodeError:
        raise MalformedJSON("The body is not UTF-8 text.") from None
    except ValueError as exc:
        raise MalformedJSON(f"The body is not valid JSON: {exc}.") from None
    return _clean(data, 1, text)


def clean_text(value: str) -> str:
    """`value` without the characters PostgreSQL cannot store."""
    return _REFUSED_TEXT.sub("", value)


def _clean(value: Any, depth: int, mode: str) -> Any:
    if isinstance(value, str):
        if _REFUSED_TEXT.search(value) is None:
            return value
        if mode == "reject":
            raise MalformedJSON("Text in the body may not contain NUL (\\u0000) or unpaired surrogate characters.")
        return clean_text(value)
    if isinstance(value, dict | list) and depth > MAX_DEPTH:
        raise MalformedJSON(f"The JSON body is nested too deeply (at most {MAX_DEPTH} levels).")
    if isinstance(value, dict):
        return {_clean(key, depth, mode): _clean(item, depth + 1, mode) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean(item, depth + 1, mode) for item in value]
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser through `loads`: a clear 400 for every malformed body."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return loads(stream.read() if stream is not None else b"")
        except MalformedJSON as exc:
            raise ParseError(str(exc)) from None
