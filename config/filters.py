"""The one filter backend every list uses: django-filter, with record ids filtered as numbers.

django-filter turns `filterset_fields = ["batch"]` into a choice among the existing batches, so
`?batch=12` for a batch that does not exist (or was deleted a moment ago) is refused as invalid
input. A filter is a question, not an input to store: an id nobody has answers an empty page.
"""

from typing import Any

import django_filters
from django import forms
from django.db import models
from django_filters.rest_framework import DjangoFilterBackend


class RecordIdFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField


class FilterSet(django_filters.rest_framework.FilterSet):
    @classmethod
    def filter_for_lookup(cls, field: models.Field, lookup_type: str) -> tuple[type, dict[str, Any]]:
        if isinstance(field, models.ForeignKey) and lookup_type == "exact":
            return RecordIdFilter, {}
        return super().filter_for_lookup(field, lookup_type)


class FilterBackend(DjangoFilterBackend):
    filterset_base = FilterSet
