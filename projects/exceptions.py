"""Refused project input, raised below the views and answered as a 400 in Label Studio's error body."""

from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError


class ImportRejected(ValidationError):
    """An import that cannot be written as a whole; nothing of it is stored."""

    def __init__(self, message: str):
        super().__init__({"non_field_errors": [message]})


class LabelConfigRejected(ValidationError):
    """A labeling config that is invalid, or that cannot show what the project already holds."""

    def __init__(self, message: str, *, field: str = "non_field_errors"):
        super().__init__({field: [message]})


class LabelConfigUnreadable(APIException):
    """A labeling config that is not well-formed XML; the parser's message is the error's `detail`, as in
    Label Studio's answer to the project validate endpoint."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The labeling config is not well-formed XML."
    default_code = "parse_error"
