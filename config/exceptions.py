"""Domain errors raised by services, and the DRF handler that turns them into clear 4xx answers."""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response


class DomainError(Exception):
    """A refusal a person can act on. `detail` is shown as is; `field` names the input at fault."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(self, detail: str, *, field: str | None = None, extra: dict[str, Any] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra or {}

    def as_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"detail": self.detail, "code": self.code}
        if self.field:
            payload["field"] = self.field
        payload.update(self.extra)
        return payload


class InvalidInput(DomainError):
    code = "invalid"


class NotAllowed(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "forbidden"


class NotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class Conflict(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class Gone(DomainError):
    status_code = status.HTTP_410_GONE
    code = "gone"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(exc.as_payload(), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return Response(exc.message_dict, status=status.HTTP_400_BAD_REQUEST)
        return Response({"detail": " ".join(exc.messages), "code": "invalid"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        return Response({"detail": str(exc) or "Not found.", "code": "not_found"}, status=404)
    if isinstance(exc, DjangoPermissionDenied):
        return Response({"detail": str(exc) or "Not allowed.", "code": "forbidden"}, status=403)
    # Imported here: rest_framework.views reads the parser settings, and parsers raise these errors.
    from rest_framework.views import exception_handler

    if isinstance(exc, ValidationError) and _only_missing_records(exc.get_codes()):
        # A well-formed reference to a record that does not exist (or that this user may not see) is
        # the same answer as that record's own URL gives: 404, not a refusal of the input's form.
        field = next(iter(exc.detail)) if isinstance(exc.detail, dict) else None
        payload = {"detail": _first_message(exc.detail), "code": "not_found"}
        return Response({**payload, "field": field} if field else payload, status=status.HTTP_404_NOT_FOUND)
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, APIException):
        response.data = _error_body(exc, response.data)
    return response


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """`handler404`: a URL under /api/ that matches no route answers JSON like every other API error."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=status.HTTP_404_NOT_FOUND)
    return defaults.page_not_found(request, exception)


def _only_missing_records(codes: Any) -> bool:
    if isinstance(codes, dict):
        return bool(codes) and all(_only_missing_records(c) for c in codes.values())
    if isinstance(codes, list):
        return bool(codes) and all(_only_missing_records(c) for c in codes)
    return codes == "does_not_exist"


def _first_message(detail: Any) -> str:
    while isinstance(detail, dict | list):
        detail = next(iter(detail.values() if isinstance(detail, dict) else detail))
    return str(detail)


def _error_body(exc: APIException, data: Any) -> Any:
    """The shapes config/schema.py documents: `{"detail", "code"}`, or for input refused field by
    field `{"field name": ["message", ...]}`. DRF answers a bare list for a ValidationError raised
    with a message, and `{"detail"}` without a code for the others."""
    if isinstance(data, list):
        return {"detail": " ".join(str(message) for message in data), "code": "invalid"}
    if isinstance(data, dict) and set(data) == {"detail"} and isinstance(data["detail"], str):
        codes = exc.get_codes()
        return {"detail": data["detail"], "code": codes if isinstance(codes, str) else exc.default_code}
    return data
