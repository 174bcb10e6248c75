"""Errors of the exports app: domain errors the jobs raise, and API errors with the status a caller gets."""

import math

from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError


class ExportNotCompleted(APIException):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "Export is not completed."
    default_code = "export_not_completed"


class ExportFileMissing(APIException):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "The export file is missing from storage."
    default_code = "export_file_missing"


class ExportStorageError(Exception):
    """The export storage could not be reached or refused an operation (the message says which, for logs and
    job failure reasons; API callers see StorageUnavailable instead)."""


class StorageUnavailable(APIException):
    """What an API caller is told when the export storage fails: no names, paths or internals."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The export storage is unavailable right now; try again later."
    default_code = "storage_unavailable"


class IncrementBaseUnusable(Exception):
    """An incremental snapshot's base snapshot (or its task index) is gone; the message says which."""


class LeaseLost(Exception):
    """The job no longer holds its row (deleted, failed by the sweeper, or taken over)."""


class ConversionRejected(ValidationError):
    """A conversion that cannot start: the snapshot is not completed, or one of that format already started."""


class FormatNotConverted(APIException):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "This format is not converted yet."
    default_code = "format_not_converted"


class ExportConversionFailed(APIException):
    """The easy export's converter could not convert the tasks (the detail says why)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The tasks could not be converted to this format."
    default_code = "export_conversion_failed"


class ConversionsBusy(APIException):
    """Every slot for conversions run inside requests stayed taken while the request waited: worth retrying later.
    `wait` (seconds) becomes the response's Retry-After header, as DRF does for Throttled."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Too many exports are being converted right now; try again shortly."
    default_code = "conversions_busy"

    def __init__(self, detail: str | None = None, code: str | None = None, *, wait: float | None = None):
        super().__init__(detail, code)
        self.wait = max(1, math.ceil(wait)) if wait is not None else None
