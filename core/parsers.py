"""The API's parsers: DRF's, plus the text rule (core/text.py) on every string of every body, so no
endpoint, present or future, stores a control character or turns one into a database error."""

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ValidationError

from .text import problems_in


def refuse_control_characters(data: Any) -> None:
    items = data.lists() if hasattr(data, "lists") else None
    document = {key: values if len(values) != 1 else values[0] for key, values in items} if items else data
    # DRF's ValidationError, not a domain error: config.exceptions imports DRF's views, which load
    # these parsers. The answer is a 400 shaped like a serializer's: {"rationale": ["contains …"]}.
    for field, problem in problems_in(document):
        raise ValidationError({field: [f"{field} {problem}."]})


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        refuse_control_characters(data)
        return data


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        refuse_control_characters(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    """Form fields are checked here; uploaded files are checked line by line by their importers."""

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        refuse_control_characters(parsed.data)
        return parsed
