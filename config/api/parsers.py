"""The API's JSON body parser."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DRFJSONParser

# Deeper bodies are refused: far more than any request needs, and far enough below Python's recursion limit that
# serializers, database adapters and the renderer can walk whatever was accepted.
MAX_DEPTH = 255
TOO_DEEP_MESSAGE = f"JSON parse error - the body nests deeper than {MAX_DEPTH} levels"


def nesting_exceeds(value, limit: int) -> bool:
    """Whether lists and objects in a parsed JSON value nest more than `limit` levels deep (without recursion)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class JSONParser(DRFJSONParser):
    """DRF's JSON parser, refusing a body nested more than MAX_DEPTH levels with a 400 like any unreadable body.

    Left alone, the decoder raises RecursionError on a very deep body, and a slightly shallower one fails later
    in the request: either would be a 500.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(TOO_DEEP_MESSAGE) from exc
        if nesting_exceeds(data, MAX_DEPTH):
            raise ParseError(TOO_DEEP_MESSAGE)
        return data
