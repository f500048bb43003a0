"""Parsers of the import's JSON-lines bodies (memory.imports): the export's own format sent back as it is."""

from django.core.exceptions import ValidationError
from rest_framework import parsers, status
from rest_framework.exceptions import APIException, ParseError

from memory.imports import IMPORT_MAX_BYTES, ImportTooLarge, lines_from_bytes


class ImportTooLargeError(APIException):
    """413, as core.parsers.RequestTooLarge, at the import's own bound."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"
    default_detail = ImportTooLarge.message


class JSONLinesParser(parsers.BaseParser):
    """application/x-ndjson: the body is the JSON lines, as text (read up to the import's bound)."""

    media_type = "application/x-ndjson"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read(IMPORT_MAX_BYTES + 1) if stream is not None else b""
        try:
            return lines_from_bytes(raw)
        except ImportTooLarge:
            raise ImportTooLargeError() from None
        except ValidationError as error:
            raise ParseError(" ".join(error.messages)) from None


class JSONLParser(JSONLinesParser):
    media_type = "application/jsonl"


class PlainTextLinesParser(JSONLinesParser):
    media_type = "text/plain"
