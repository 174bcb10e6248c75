from rest_framework.exceptions import ValidationError


class ImportRejected(ValidationError):
    """An import that cannot be written as a whole; nothing of it is stored."""

    def __init__(self, message: str):
        super().__init__({"non_field_errors": [message]})
