from rest_framework import status
from rest_framework.exceptions import APIException


class ExportNotCompleted(APIException):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "Export is not completed."
    default_code = "export_not_completed"


class ExportFileMissing(APIException):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "The export file is missing from storage."
    default_code = "export_file_missing"


class LeaseLost(Exception):
    """The job no longer holds its row (deleted, failed by the sweeper, or taken over)."""
