"""The service's version endpoint."""

from drf_spectacular.utils import extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.exceptions import service_version


class VersionAPI(APIView):
    """`GET /api/version/`: the release and edition, as Label Studio answers it (no credentials needed).

    The SDK's `exports.as_json`/`as_file` helpers read `edition`: "Community" makes them use the easy export.
    """

    authentication_classes: list = []
    permission_classes: list = []
    renderer_classes = [JSONRenderer]

    @extend_schema(exclude=True)
    def get(self, request):
        version = service_version()
        package = {"version": version, "short_version": version, "latest_version_from_pypi": None}
        return Response(
            {
                "release": version,
                "edition": "Community",
                "label-studio-os-package": package,
                "label-studio-os-backend": {"message": "", "commit": ""},
                "label-studio-frontend": {},
                "dm2": {},
                "label-studio-converter": {},
                "lsf": {},
                "backend": {},
            }
        )
