"""The import's formats, read into the JSON-lines text memory_import takes, and a failed import told in words.

An import arrives as the export's own format, JSON lines: a request body (application/x-ndjson,
application/jsonl or text/plain), a file upload (the API's `file` field, the browser's form), or, as
before, the `lines` of a JSON body. Each way is bounded by IMPORT_MAX_BYTES and must be UTF-8 text that
PostgreSQL can store (the lines wait in the task's record until the worker takes them).
"""

from django.core.exceptions import ValidationError

IMPORT_MAX_BYTES = 20_000_000  # ImportSerializer's max_length: the same bound for every way in
JSON_LINES_TYPES = ("application/x-ndjson", "application/jsonl", "text/plain")


class ImportTooLarge(Exception):
    """More than IMPORT_MAX_BYTES: the API answers 413, the browser's form says so."""

    message = f"An import holds at most {IMPORT_MAX_BYTES // 1_000_000} MB of JSON lines; split the file."


def lines_from_bytes(raw: bytes, *, field: str = "lines") -> str:
    """The JSON lines in `raw`, as text; a 400 (ValidationError on `field`) when they are not text we can keep."""
    if len(raw) > IMPORT_MAX_BYTES:
        raise ImportTooLarge()
    try:
        text = raw.decode("utf-8-sig")  # a byte order mark, as some editors write, is not part of the first line
    except UnicodeDecodeError as error:
        raise ValidationError({field: f"The JSON lines are not UTF-8 text (byte {error.start + 1})."}) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ValidationError({field: f"Line {line}: contains a NUL character, which cannot be stored."})
    if not text.strip():
        raise ValidationError({field: "There are no JSON lines to import: the file or body is empty."})
    return text


def lines_from_upload(upload, *, field: str = "file") -> str:
    """The JSON lines of an uploaded file (read whole only once its size is known to be within the bound)."""
    if upload.size > IMPORT_MAX_BYTES:
        raise ImportTooLarge()
    return lines_from_bytes(upload.read(), field=field)


def import_problems(error: str) -> list[str]:
    """A failed import's error, as the task record keeps it ("Line 3: ...", one problem a line, see
    services.ImportProblems), as sentences; records written before the task kept only the messages start
    with the exception's class name, which is dropped."""
    name, separator, detail = error.partition(": ")
    if separator and name.isidentifier():
        error = detail
    return [line.strip() for line in error.splitlines() if line.strip()]
