"""Keeps API errors JSON even when they are raised outside DRF views (CSRF, body size, Django's handlers)."""

import logging

from django.core.exceptions import RequestDataTooBig

from config.api.exceptions import error_response

logger = logging.getLogger(__name__)

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
            return error_response(status_code, REASONS.get(status_code, response.reason_phrase))
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, RequestDataTooBig):
            return error_response(413, str(exception) or REASONS[413])
        if not request.path.startswith("/api/"):
            return None
        logger.exception("Unhandled error on %s", request.path, exc_info=exception)
        return error_response(500, REASONS[500], exc=exception)
