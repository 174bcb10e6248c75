from config.api.urls import both_slashes
from projects import views

urlpatterns = [
    *both_slashes("api/projects/", views.ProjectListAPI.as_view(), "project-list"),
    *both_slashes("api/projects/counts/", views.ProjectCountsAPI.as_view(), "project-counts"),
    *both_slashes("api/projects/<id:pk>/", views.ProjectDetailAPI.as_view(), "project-detail"),
    *both_slashes("api/projects/<id:pk>/import", views.ProjectImportAPI.as_view(), "project-import"),
    *both_slashes(
        "api/projects/<id:pk>/import/predictions", views.PredictionsImportAPI.as_view(), "project-import-predictions"
    ),
]
