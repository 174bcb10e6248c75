from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health
from config.api import views as api_views
from config.api.version import VersionAPI

handler400 = api_views.json_bad_request
handler403 = api_views.json_forbidden
handler404 = api_views.json_not_found
handler500 = api_views.json_server_error

urlpatterns = [
    path("", include("projects.urls")),
    path("", include("exports.urls")),
    path("", include("users.urls")),
    path("api/version/", VersionAPI.as_view(), name="version"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "docs/api/schema/json/",
        SpectacularAPIView.as_view(renderer_classes=[OpenApiJsonRenderer]),
        name="schema-json",
    ),
    path("docs/api/", SpectacularSwaggerView.as_view(url_name="schema-json"), name="swagger-ui"),
    # Operator endpoints: no credentials, not in the schema.
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("metrics", health.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api-auth/", include("rest_framework.urls")),
    # Anything else is an unmatched URL: a JSON 404 whatever the credentials (and the CSRF check: a PATCH that
    # carries a session cookie is a 404 too, not a CSRF 403).
    re_path(r"^.*$", csrf_exempt(api_views.json_not_found), name="unmatched-url"),
]
