"""Request-wide guards that belong to no single view."""

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from .text import problems_in


class RefuseControlCharacters:
    """A 400 that names the parameter for control characters in the query string (any request) and
    in a page's form fields (uploaded files are checked by their importers; API bodies by
    core.parsers), instead of a database
    error further down (PostgreSQL cannot store or compare NUL)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        sources = [request.GET]
        if request.method == "POST" and not request.path.startswith("/api/"):
            sources.append(request.POST)
        for source in sources:
            document = {key: values for key, values in source.lists()}
            for field, problem in problems_in(document):
                field = field.split("[", 1)[0]
                message = f"{field} {problem}."
                if request.path.startswith("/api/"):
                    return JsonResponse({"detail": message, "code": "invalid", "field": field}, status=400)
                return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
