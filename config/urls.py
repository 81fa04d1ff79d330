from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter

from accounts import apis as accounts_apis
from annotation import apis as annotation_apis

router = DefaultRouter()
router.register("batches", annotation_apis.BatchViewSet, basename="batch")
router.register("ratings", annotation_apis.RatingViewSet, basename="rating")
router.register("comparisons", annotation_apis.ComparisonViewSet, basename="comparison")
router.register("people", accounts_apis.PersonViewSet, basename="person")
router.register("vendors", accounts_apis.VendorViewSet, basename="vendor")

api_urlpatterns = [
    path("", include(router.urls)),
    path("me/", accounts_apis.me, name="me"),
    path("auth/token/", obtain_auth_token, name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_urlpatterns)),
    path("", include("frontend.urls")),
]
