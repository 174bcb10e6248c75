from django.urls import path

from users import views

urlpatterns = [
    path("api/token/", views.TokenListAPI.as_view(), name="token-list"),
    path("api/token/refresh/", views.TokenRefreshAPI.as_view(), name="token-refresh"),
    path("api/token/blacklist/", views.TokenBlacklistAPI.as_view(), name="token-blacklist"),
    path("api/token/rotate/", views.TokenRotateAPI.as_view(), name="token-rotate"),
]
