"""The API's parsers: bounded in size and depth, and only text PostgreSQL can store.

A JSON body over REQUEST_MAX_BYTES is answered 413 without being read whole (forms are bounded by Django's
DATA_UPLOAD_MAX_MEMORY_SIZE, the same number, also a 413); JSON nested deeper than JSON_MAX_DEPTH, or any
body holding a NUL character or a lone surrogate (keys included), is a 400 that says where. NaN and
Infinity are refused (strict JSON). Without these, a deep body raised RecursionError and a NUL reached
PostgreSQL: both were 500s.
"""

from django.conf import settings
from rest_framework import parsers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.utils import json


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self):
        super().__init__(f"The request body is larger than {settings.REQUEST_MAX_BYTES} bytes.")


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read(settings.REQUEST_MAX_BYTES + 1) if stream is not None else b""
        if len(raw) > settings.REQUEST_MAX_BYTES:
            raise RequestTooLarge()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding))  # DRF's json: strict, NaN and Infinity refused
        except RecursionError:
            raise ParseError(f"The JSON body is nested more than {settings.JSON_MAX_DEPTH} levels deep.") from None
        except ValueError as error:  # malformed JSON, or bytes that are not text in this encoding
            raise ParseError(f"JSON parse error - {error}") from None
        problem = storable_json_problem(data)
        if problem:
            raise ParseError(problem)
        return data


def storable_json_problem(data) -> str:
    """What keeps parsed JSON from being stored and processed, or "" (walked without recursion)."""
    stack = [(data, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if depth > settings.JSON_MAX_DEPTH:
            return f"The JSON body is nested more than {settings.JSON_MAX_DEPTH} levels deep."
        if isinstance(value, dict):
            for key, item in value.items():
                problem = _text_problem(key)
                if problem:
                    return f"A key {problem} (in {where or 'the body'})."
                stack.append((item, depth + 1, f"{where}.{key}" if where else key))
        elif isinstance(value, list):
            stack.extend(
                (item, depth + 1, f"{where}.{index}" if where else str(index)) for index, item in enumerate(value)
            )
        elif isinstance(value, str):
            problem = _text_problem(value)
            if problem:
                return f"The value at {where or 'the body'} {problem}."
    return ""


def _text_problem(text: str) -> str:
    if "\x00" in text:
        return "contains a NUL character, which cannot be stored"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid Unicode text)"
    return ""


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        return _checked_form(super().parse(stream, media_type, parser_context))


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        _checked_form(result.data)
        return result


def _checked_form(data):
    for key, values in data.lists():
        problem = _text_problem(key) or next((_text_problem(v) for v in values if isinstance(v, str)), "")
        if problem:
            raise ParseError(f"The field {key!r} {problem}.")
    return data
