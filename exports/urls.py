from django.urls import path

import config.api.urls  # noqa: F401 -- registers the `id` path converter
from exports import views, webhook_views

urlpatterns = [
    path("api/projects/<id:pk>/export", views.ExportAPI.as_view(), name="project-export"),
    path("api/projects/<id:pk>/export/files", views.ExportFilesAPI.as_view(), name="project-export-files"),
    path("api/projects/<id:pk>/export/formats", views.ExportFormatsAPI.as_view(), name="project-export-formats"),
    path("api/projects/<id:pk>/exports/", views.ExportListAPI.as_view(), name="project-exports-list"),
    path("api/projects/<id:pk>/exports/<id:export_pk>", views.ExportDetailAPI.as_view(), name="project-exports-detail"),
    path(
        "api/projects/<id:pk>/exports/<id:export_pk>/download",
        views.ExportDownloadAPI.as_view(),
        name="project-exports-download",
    ),
    path(
        "api/projects/<id:pk>/exports/<id:export_pk>/convert",
        views.ExportConvertAPI.as_view(),
        name="project-exports-convert",
    ),
    path("api/webhooks/", webhook_views.WebhookListAPI.as_view(), name="webhook-list"),
    path("api/webhooks/info/", webhook_views.WebhookInfoAPI.as_view(), name="webhook-info"),
    path("api/webhooks/<id:pk>/", webhook_views.WebhookAPI.as_view(), name="webhook-detail"),
]
