from django.apps import AppConfig


class LabelStudioConfig(AppConfig):
    name = "config.labelstudio"
    label = "labelstudio"
    verbose_name = "Attached Label Studio (read only)"

    def ready(self) -> None:
        from config.labelstudio import checks  # noqa: F401 -- registers the start-up check of its tables
