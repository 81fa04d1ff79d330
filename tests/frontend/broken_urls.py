"""Preflab's URLs plus one view that fails, for the 500 page's test."""

from django.urls import path

from config.urls import urlpatterns as preflab_urlpatterns


def broken(request):
    raise RuntimeError("a bug in a view")


urlpatterns = [path("broken/", broken), *preflab_urlpatterns]
