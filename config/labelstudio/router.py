"""Sends the attached Label Studio's models to its database, read only, and keeps every migration off it."""

from typing import Any

from django.db.models import Model

DATABASE = "labelstudio"
APP_LABEL = "labelstudio"


class LabelStudioRouter:
    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        return DATABASE if model._meta.app_label == APP_LABEL else None

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        if model._meta.app_label == APP_LABEL:
            raise PermissionError("The attached Label Studio's database is read only for this service.")
        return None

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        labels = {obj1._meta.app_label, obj2._meta.app_label}
        if APP_LABEL in labels:
            return labels == {APP_LABEL}
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        if db == DATABASE:
            return False  # nothing of this service is ever created on Label Studio's database
        if app_label == APP_LABEL:
            return False
        return None
