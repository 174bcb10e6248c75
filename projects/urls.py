from django.urls import path

import config.api.urls  # noqa: F401 -- registers the `id` path converter
from projects import views

urlpatterns = [
    path("api/projects/", views.ProjectListAPI.as_view(), name="project-list"),
    path("api/projects/counts/", views.ProjectCountsAPI.as_view(), name="project-counts"),
    path("api/projects/validate/", views.LabelConfigValidateAPI.as_view(), name="label-config-validate"),
    path("api/projects/<id:pk>/", views.ProjectDetailAPI.as_view(), name="project-detail"),
    path("api/projects/<id:pk>/annotators/", views.ProjectAnnotatorsAPI.as_view(), name="project-annotators"),
    path("api/projects/<id:pk>/duplicate/", views.ProjectDuplicateAPI.as_view(), name="project-duplicate"),
    path(
        "api/projects/<id:pk>/validate/",
        views.ProjectLabelConfigValidateAPI.as_view(),
        name="project-label-config-validate",
    ),
    path("api/projects/<id:pk>/import", views.ProjectImportAPI.as_view(), name="project-import"),
    path(
        "api/projects/<id:pk>/import/predictions",
        views.PredictionsImportAPI.as_view(),
        name="project-import-predictions",
    ),
]
