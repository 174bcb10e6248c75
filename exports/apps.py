from django.apps import AppConfig
from django.core.signals import request_started


class ExportsConfig(AppConfig):
    name = "exports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from exports.models import on_job_finished
        from exports.recovery import start_embedded_runner
        from exports.services import project_exports_delete
        from exports.webhooks import job_finished
        from projects.services import on_project_delete

        on_project_delete(project_exports_delete)
        on_job_finished(job_finished)  # a finished snapshot or conversion fires its webhooks

        # The embedded job pool starts with a web process's first request, after recovering
        # what a previous process left unfinished; management commands never start it.
        request_started.connect(start_embedded_runner, dispatch_uid="exports-start-embedded-runner")
