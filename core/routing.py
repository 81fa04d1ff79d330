"""One rule for ids in URLs: a record id is 1–18 digits, anything else does not match the route.

A malformed id (`/api/batches/x/next/`, `/research/batches/99999999999999999999/`) then answers
404, exactly like an id that does not exist, instead of reaching a view that would turn it into a
database error. Eighteen digits keep every matching value inside PostgreSQL's bigint, the type of
every primary key here (`DEFAULT_AUTO_FIELD`).

Page routes use the `<id:name>` converter; API viewsets are registered on `IdRouter`, whose
default lookup is the same pattern; an `@action` with an id in its own `url_path` uses `ID_PATTERN`.
`tests/core/test_routing.py` walks every route and fails on one that lets a malformed id through.
"""

from django.urls import register_converter
from rest_framework.routers import DefaultRouter

ID_PATTERN = "[0-9]{1,18}"


class RecordIdConverter:
    regex = ID_PATTERN

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int | str) -> str:
        return str(int(value))


register_converter(RecordIdConverter, "id")


class IdRouter(DefaultRouter):
    """A DefaultRouter whose detail routes only match record ids (a viewset may still set its own
    `lookup_value_regex`, e.g. for a slug)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._default_value_pattern = ID_PATTERN


def id_param(name: str) -> str:
    """The named regex group for an id inside an `@action`'s url_path: `answers/{id_param('question_id')}`."""
    return f"(?P<{name}>{ID_PATTERN})"
