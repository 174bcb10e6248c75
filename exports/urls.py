from config.api.urls import both_slashes
from exports import views

urlpatterns = [
    *both_slashes("api/projects/<id:pk>/exports/", views.ExportListAPI.as_view(), "project-exports-list"),
    *both_slashes(
        "api/projects/<id:pk>/exports/<id:export_pk>", views.ExportDetailAPI.as_view(), "project-exports-detail"
    ),
    *both_slashes(
        "api/projects/<id:pk>/exports/<id:export_pk>/download",
        views.ExportDownloadAPI.as_view(),
        "project-exports-download",
    ),
]
