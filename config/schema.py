"""The OpenAPI schema's shared parts: the error bodies `config.exceptions` answers with, and an
AutoSchema that documents on every operation the errors it can really answer.

Which errors an operation can answer follows from what the view is made of, so no view repeats it:

* 400 when it reads input: a request body, or query parameters (filters, `page`, `page_size`);
* 401 and 403 when it needs a signed-in user (no credentials or a bad token; the wrong role);
* 404 when it names a record (a path id, a record id in the body or the query) or takes a query
  (a page number past the end, a `format` no renderer has);
* 429 when a throttle applies to it.

Errors that depend on the state of a record (409 conflict, 410 gone) are declared by the action
whose service raises them, with `@state_errors(409)` above it.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.settings import api_settings

# core/text.py's rule for everything people put in, as a JSON Schema pattern: no C0 control
# characters other than tab, line feed and carriage return, no DEL, nothing from the C1 block.
# (Unpaired surrogates, also refused, cannot be sent in UTF-8 at all.) tests/core/test_schema.py
# checks that the two agree on every character they cover.
TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"


class ErrorSerializer(serializers.Serializer):
    """A refusal: what went wrong in words, a stable code, and the input at fault where there is one."""

    detail = serializers.CharField(help_text="What went wrong, in words a person can act on.")
    code = serializers.CharField(help_text="A stable machine-readable code, e.g. not_found, conflict, throttled.")
    field = serializers.CharField(required=False, help_text="The input at fault, when one is.")


class ValidationErrorSerializer(serializers.Serializer):
    """Input refused. Either one message (`detail`, `code`, `field`) or, for a form, the messages of
    each field at fault keyed by its name: `{"name": ["This field is required."]}`."""

    detail = serializers.CharField(required=False)
    code = serializers.CharField(required=False)
    field = serializers.CharField(required=False)


F = TypeVar("F", bound=Callable[..., Any])

ERROR_RESPONSE = OpenApiResponse(ErrorSerializer, description="Refused: see `detail` and `code`.")
VALIDATION_F = TypeVar("F", bound=Callable[..., Any])

ERROR_RESPONSE = OpenApiResponse(ValidationErrorSerializer, description="The input was refused.")

ERROR_DESCRIPTIONS = {
    "400": "The input was refused.",
    "401": "No credentials, or credentials that are not valid.",
    "403": "Signed in, but this role may not do this.",
    "404": "No such record (or not one this user may see), or no such page.",
    "409": "The record is not in a state that allows this.",
    "410": "The record is gone.",
    "429": "Too many requests: wait as long as Retry-After says.",
}


def state_errors(*codes: int) -> Callable[[F], F]:
    """Declare the state errors (409, 410) a view method (or an @api_view function, placed above
    @api_view) answers, for the schema."""

    def declare(method: F) -> F:
        # Above @api_view, the function is already a view: its class is what the schema sees.
        target = getattr(method, "cls", method)
        target.state_errors = tuple(str(code) for code in codes)
        return method

    return declare


class PreflabAutoSchema(AutoSchema):
    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query" and _is_free_text(parameter.get("schema", {})):
                parameter["schema"]["pattern"] = TEXT_PATTERN
            if parameter["in"] == "query" and parameter["name"] == "format" and "enum" in parameter["schema"]:
                parameter["schema"]["enum"] = [*parameter["schema"]["enum"], ""]  # empty: the default, JSON
        responses = operation["responses"]
        for code in self.error_status_codes(operation):
            if code not in responses:
                serializer = ValidationErrorSerializer if code == "400" else ErrorSerializer
                response = self._get_response_for_code(serializer, code, direction="response")
                response["description"] = ERROR_DESCRIPTIONS[code]
                responses[code] = response
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def map_parsers(self) -> list[Any]:
        # Every view parses JSON, forms and multipart alike, but a form cannot say null or nest a
        # list of objects: the schema offers the body types a view asks for itself (uploads), and
        # otherwise JSON.
        media_types = super().map_parsers()
        if self.view.parser_classes == api_settings.DEFAULT_PARSER_CLASSES:
            return [m for m in media_types if m == "application/json"] or media_types
        return media_types

    def _map_serializer_field(self, field: serializers.Field, direction: str, bypass_extensions: bool = False) -> Any:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request" and _is_free_text(schema):
            schema["pattern"] = TEXT_PATTERN
        if not field.read_only or "$ref" in schema:
            return schema
        # A read-only field falls back to its default when its source is missing
        # (`CharField(source="vendor.name", default=None)`): None is then a value it answers.
        if field.default is None and not schema.get("nullable"):
            schema["nullable"] = True
        # DRF drops `allow_blank` from read-only model fields, but a blank model field still reads "".
        if _model_field_is_blank(field):
            if "enum" in schema and "" not in schema["enum"]:
                schema["enum"] = [*schema["enum"], ""]
            elif schema.get("format") in ("uri", "email"):
                schema = {"anyOf": [schema, {"type": "string", "maxLength": 0}]}
        return schema

    def _get_response_for_code(
        self, serializer: Any, status_code: str, media_types: Any = None, direction: str = "response"
    ) -> dict[str, Any]:
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        if media_types and "content" not in response:
            # A download or a stream described in words only (`(200, "text/csv"): OpenApiResponse(
            # description=...)`) still has its media type, and one status may have several.
            response["content"] = {media_type: {"schema": {}} for media_type in media_types}
        return response

    def _get_filter_parameters(self) -> list[dict[str, Any]]:
        # A viewset's filters narrow its `list`; another action that answers rows (a report's
        # trend, a run's metrics) does not read them, so they are not its parameters.
        if getattr(self.view, "action", None) != "list":
            return []
        return super()._get_filter_parameters()

    def _get_paginator(self) -> Any:
        # Only `list` actions page their rows; actions that answer several records (an import, a
        # CSV of invitations, a report's table) answer them as a plain array.
        if getattr(self.view, "action", None) != "list":
            return None
        return super()._get_paginator()

    def error_status_codes(self, operation: dict[str, Any]) -> list[str]:
        parameters = operation.get("parameters", [])
        in_query = any(p["in"] == "query" for p in parameters)
        in_path = any(p["in"] == "path" for p in parameters)
        has_body = "requestBody" in operation
        codes = []
        if has_body or in_query:
            codes.append("400")
        if self.needs_user():
            codes += ["401", "403"]
        if in_path or has_body or in_query:  # a record id, a page number, or a format that does not exist
            codes.append("404")
        if self.view.get_throttles():
            codes.append("429")
        handler = getattr(self.view, getattr(self.view, "action", None) or self.method.lower(), None)
        codes += getattr(handler, "state_errors", None) or getattr(self.view, "state_errors", ())
        return codes

    def needs_user(self) -> bool:
        return not all(isinstance(permission, AllowAny) for permission in self.view.get_permissions())


def _model_field_is_blank(field: serializers.Field) -> bool:
    parent = getattr(field, "parent", None)
    model = getattr(getattr(parent, "Meta", None), "model", None)
    if model is None or not isinstance(parent, serializers.ModelSerializer) or "." in (field.source or ""):
        return False
    try:
        model_field = model._meta.get_field(field.source)
    except Exception:  # a property or an annotation, not a model field
        return False
    return bool(getattr(model_field, "blank", False)) and not model_field.is_relation


def _is_free_text(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "string" and not ({"enum", "format", "pattern"} & set(schema))
