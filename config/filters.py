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
from drf_spectacular.utils import extend_schema_field

# Ids are 1 to 18 digits (core/routing.py): inside every database's integer range.
MAX_RECORD_ID = 10**18 - 1


class RecordIdField(forms.IntegerField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_RECORD_ID)
        super().__init__(*args, **kwargs)


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": MAX_RECORD_ID})
class RecordIdFilter(django_filters.NumberFilter):
    field_class = RecordIdField


class StrictBooleanField(forms.Field):
    """`true` or `false`, as the schema says. Django's NullBooleanField also reads `null`, `unknown`
    and anything else as "no filter", which answers every row to a typo."""

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise forms.ValidationError("Use true or false.", code="invalid")


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class FilterSet(django_filters.rest_framework.FilterSet):
    def is_valid(self) -> bool:
        """An empty value for a typed filter (`?week=`, `?is_open=`, `?batch=`) is refused as the schema
        says it is, instead of being read as "no filter" and answering every row; leave the parameter
        out to not filter. Text filters, and choice filters (whose schema lists "" as "any"), may
        still be empty."""
        valid = super().is_valid()
        empty = [
            name
            for name, declared in self.filters.items()
            if self.data.get(name) == ""
            and not isinstance(declared, django_filters.CharFilter | django_filters.ChoiceFilter)
        ]
        for name in empty:
            self.form.add_error(name, "Give a value, or leave the parameter out to not filter on it.")
        return valid and not empty

    @classmethod
    def filter_for_lookup(cls, field: models.Field, lookup_type: str) -> tuple[type, dict[str, Any]]:
        if isinstance(field, models.ForeignKey) and lookup_type == "exact":
            return RecordIdFilter, {}
        if isinstance(field, models.BooleanField) and lookup_type == "exact":
            return StrictBooleanFilter, {}
        return super().filter_for_lookup(field, lookup_type)


class FilterBackend(DjangoFilterBackend):
    filterset_base = FilterSet
