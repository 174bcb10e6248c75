"""Label Studio's JSON error body for every failure the API can produce."""

import json
import logging
import traceback
import uuid
from importlib import metadata

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpResponse
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def service_version() -> str:
    try:
        return metadata.version("ls-export-service")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def error_body(status_code: int, detail, *, validation_errors=None, exc: BaseException | None = None) -> dict:
    body = {
        "id": str(uuid.uuid4()),
        "status_code": status_code,
        "version": service_version(),
        "detail": detail,
        "exc_info": None,
    }
    if settings.DEBUG and exc is not None:
        body["exc_info"] = "".join(traceback.format_exception(exc))
    if validation_errors is not None:
        body["validation_errors"] = validation_errors
    return body


def error_response(status_code: int, detail: str, **kwargs) -> HttpResponse:
    """A plain Django response with the error body, for code paths outside DRF views. Encoded as DRF's renderer
    encodes the views' errors (compact, UTF-8), without the renderer itself: this also answers when rendering
    failed."""
    body = json.dumps(
        error_body(status_code, detail, **kwargs), cls=JSONEncoder, ensure_ascii=False, separators=(",", ":")
    )
    return HttpResponse(body.encode(), status=status_code, content_type="application/json")


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


def exception_handler(exc, context):
    """DRF's handler, reshaped into Label Studio's body; unknown errors become a logged JSON 500."""
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(f"Request body is larger than the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)

    request = context.get("request")
    if request is not None:
        # Errors are JSON whatever the client prefers (a browser would otherwise get the browsable API's page).
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
        return Response(error_body(500, "Internal server error", exc=exc), status=500)

    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        body = error_body(response.status_code, "Validation error", validation_errors=errors)
    else:
        body = error_body(response.status_code, exc.detail)  # DRF answered, so `exc` is an APIException by now
    response.data = body
    return response
