from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("annotate/", views.annotate_index, name="annotate-index"),
    path("annotate/<int:batch_id>/", views.rate, name="rate"),
    path("research/", views.research_batches, name="research-batches"),
    path("research/batches/<int:batch_id>/", views.research_batch, name="research-batch"),
    path("vendor/", views.vendor_people, name="vendor-people"),
]
