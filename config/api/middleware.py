"""Keeps API errors JSON even when they are raised outside DRF views (CSRF, body size, Django's handlers)."""

import functools
import logging

from django.core.exceptions import RequestDataTooBig
from django.urls import Resolver404, URLResolver, get_resolver, get_urlconf

from config.api.exceptions import error_response

logger = logging.getLogger(__name__)

CATCH_ALL = "unmatched-url"

REASONS = {
    400: "Bad request.",
    403: "Forbidden.",
    404: "Not found.",
    405: "Method not allowed.",
    413: "Request body is too large.",
    500: "Internal server error",
}


class JsonErrorMiddleware:
    """Rewrites any non-JSON error response under /api/ into the JSON error body."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and request.path.startswith("/api/")
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            status_code = response.status_code
            replacement = error_response(status_code, REASONS.get(status_code, response.reason_phrase))
            for header in ("WWW-Authenticate", "Allow", "Content-Range"):
                if header in response:
                    replacement[header] = response[header]
            return replacement
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, RequestDataTooBig):
            return error_response(413, str(exception) or REASONS[413])
        if not request.path.startswith("/api/"):
            return None
        logger.exception("Unhandled error on %s", request.path, exc_info=exception)
        return error_response(500, REASONS[500], exc=exception)


def _matches_a_view(path: str) -> bool:
    return _routes_to_a_view(get_resolver(get_urlconf()), path)


@functools.lru_cache(maxsize=1024)
def _routes_to_a_view(resolver: URLResolver, path: str) -> bool:
    """Kept per URLconf (a changed ROOT_URLCONF is a new resolver): Django resolves the path again for the
    request, and resolving it twice cost more than the middleware's other work together."""
    try:
        match = resolver.resolve(path)
    except Resolver404:
        return False
    return match.url_name != CATCH_ALL


class EitherSlashMiddleware:
    """Serves each path in its other slash form too, by routing it internally: never a redirect, which would
    turn a client's POST into a GET. URLs keep Label Studio's exact spelling in the URLconf and the schema."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if path.startswith("/api/") and not path.endswith("//") and not _matches_a_view(path):
            other = path[:-1] if path.endswith("/") else f"{path}/"
            if _matches_a_view(other):
                request.path_info = other
                request.path = request.path[:-1] if request.path.endswith("/") else f"{request.path}/"
        return self.get_response(request)
