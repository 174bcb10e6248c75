"""Label Studio's page-number pagination: ?page=&page_size= (default 30, max 100)."""

from rest_framework.pagination import PageNumberPagination


class ProjectPagination(PageNumberPagination):
    page_size = 30
    page_size_query_param = "page_size"
    max_page_size = 100
    invalid_page_message = "Invalid page."


class OptionalPagination(ProjectPagination):
    """Pages only when the client asks for them with ?page= or ?page_size=; otherwise the view answers a list."""

    def paginate_queryset(self, queryset, request, view=None):
        if "page" not in request.query_params and "page_size" not in request.query_params:
            return None
        return super().paginate_queryset(queryset, request, view)
