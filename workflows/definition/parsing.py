"""Reading a definition's text into plain JSON data, remembering where every value was written.

YAML is read event by event (PyYAML's parser, libyaml when present) and composed here rather than by
PyYAML's constructor, so that: only JSON data comes out (the YAML 1.2 core schema: `on`/`yes` stay text,
timestamps stay text, custom tags are refused), duplicate keys are problems rather than a silent last-wins,
and a hostile upload stays cheap: the source is capped, nesting is capped as it is read, and aliases are
counted at their expanded size before anything is copied (a billion-laughs document stops at the cap).
JSON is read by a small scanner of the same shape so that its problems have places too."""

import bisect
import copy
import math
import re
from json.decoder import JSONDecodeError, scanstring

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from workflows.definition.problems import DefinitionInvalid, Parts, Positions, Problem, path_of

MAX_SOURCE_BYTES = 256 * 1024
MAX_DEPTH = 64
MAX_VALUES = 100_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML = "tag:yaml.org,2002:"
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_NOT_A_NUMBER = re.compile(r"^(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


class _Refused(Exception):
    """A problem that stops reading: the place is known where it is raised."""

    def __init__(self, code: str, message: str, place: tuple[int | None, int | None] = (None, None)):
        super().__init__(message)
        self.problem = Problem(path="", line=place[0], column=place[1], code=code, message=message)


def parse_with_positions(source: str, format: str | None = None) -> tuple[object, Positions]:
    """The data of `source` and where each of its values starts. `format` is "yaml", "json" or None (a
    document whose first character is `{` is read as JSON, and as YAML if it is not valid JSON)."""
    if format not in (None, "yaml", "json"):
        raise ValueError(f"unknown definition format {format!r}: expected 'yaml' or 'json'")
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DefinitionInvalid(
                [Problem("", None, None, "syntax", f"the definition is not UTF-8 text: {error}")]
            ) from None
    size = len(source) if len(source) > MAX_SOURCE_BYTES else len(source.encode("utf-8", "surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        message = f"the definition is {size} bytes; the limit is {MAX_SOURCE_BYTES // 1024} KB"
        raise DefinitionInvalid([Problem("", None, None, "too_large", message)])
    source = source.removeprefix("\ufeff")
    as_json = format == "json" or (format is None and source.lstrip().startswith("{"))
    if as_json:
        try:
            return _JSONReader(source).read()
        except DefinitionInvalid as invalid:
            if format == "json" or any(problem.code != "syntax" for problem in invalid.problems):
                raise
            try:
                return _YAMLReader(source).read()
            except DefinitionInvalid:
                raise invalid from None
    return _YAMLReader(source).read()


def parse_document(source: str, format: str | None = None) -> tuple[dict, Positions]:
    """Like parse_with_positions, for a definition: the document must be a mapping."""
    data, positions = parse_with_positions(source, format)
    if not isinstance(data, dict):
        line, column = positions.at(())
        what = "empty" if data is None else f"a {_json_type(data)}"
        message = f"a definition is a mapping with version, name and steps; this document is {what}"
        raise DefinitionInvalid([Problem("", line, column, "schema", message)])
    return data, positions


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "number"


class _Frame:
    __slots__ = ("container", "parts", "anchor", "start", "key", "skip", "key_lines")

    def __init__(self, container, parts, anchor, start):
        self.container = container
        self.parts = parts  # None inside a value that is thrown away (a duplicate key's)
        self.anchor = anchor
        self.start = start  # the value count when it opened: its expanded size is count - start at the end
        self.key = _NO_KEY
        self.skip = False
        self.key_lines: dict[str, int] = {}


_NO_KEY = object()


class _YAMLReader:
    def __init__(self, source: str):
        self.source = source
        self.positions = Positions()
        self.problems: list[Problem] = []
        self.anchors: dict[str, tuple[object, int]] = {}
        self.stack: list[_Frame] = []
        self.count = 0
        self.root = None

    def read(self) -> tuple[object, Positions]:
        loader = _Loader(self.source)
        try:
            documents = 0
            while loader.check_event():
                event = loader.get_event()
                if isinstance(event, DocumentStartEvent):
                    documents += 1
                    if documents > 1:
                        message = "a definition is one YAML document; this source has another after `---`"
                        raise _Refused("syntax", message, _place(event))
                elif isinstance(event, ScalarEvent):
                    self.count_values(1, event)
                    self.add(self.scalar(event), event, 1, text=event.value)
                elif isinstance(event, AliasEvent):
                    self.alias(event)
                elif isinstance(event, SequenceStartEvent | MappingStartEvent):
                    self.open(event)
                elif isinstance(event, SequenceEndEvent | MappingEndEvent):
                    frame = self.stack.pop()
                    self.add(frame.container, None, self.count - frame.start, anchor=frame.anchor, opened=True)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            message = " ".join(part for part in (error.context, error.problem) if part) or str(error)
            place = (mark.line + 1, mark.column + 1) if mark else (None, None)
            raise DefinitionInvalid([Problem("", place[0], place[1], "syntax", f"YAML: {message}")]) from None
        except yaml.YAMLError as error:
            raise DefinitionInvalid([Problem("", None, None, "syntax", f"YAML: {error}")]) from None
        except _Refused as refused:
            raise DefinitionInvalid([*self.problems, refused.problem]) from None
        finally:
            dispose = getattr(loader, "dispose", None)
            if dispose:
                dispose()
        if self.problems:
            raise DefinitionInvalid(self.problems)
        return self.root, self.positions

    def count_values(self, size: int, event) -> None:
        self.count += size
        if self.count > MAX_VALUES:
            message = f"the document holds more than {MAX_VALUES} values once its aliases are expanded"
            raise _Refused("too_large", message, _place(event))

    def next_parts(self) -> Parts | None:
        """The path of the value about to be read; None for a mapping key or inside a discarded value."""
        if not self.stack:
            return ()
        frame = self.stack[-1]
        if frame.parts is None:
            return None
        if isinstance(frame.container, list):
            return (*frame.parts, len(frame.container))
        if frame.key is _NO_KEY or frame.skip:
            return None
        return (*frame.parts, frame.key)

    def open(self, event) -> None:
        is_map = isinstance(event, MappingStartEvent)
        allowed = (None, "!", _YAML + ("map" if is_map else "seq"))
        if event.tag not in allowed:
            raise _Refused("syntax", _tag_message(event.tag), _place(event))
        if self.stack and isinstance(self.stack[-1].container, dict) and self.stack[-1].key is _NO_KEY:
            raise _Refused("syntax", "a mapping key must be text, not a list or a mapping", _place(event))
        if len(self.stack) >= MAX_DEPTH:
            raise _Refused("too_large", f"the document nests deeper than {MAX_DEPTH} levels", _place(event))
        parts = self.next_parts()
        if parts is not None:
            self.positions.values[parts] = _place(event)
        self.count_values(1, event)
        self.stack.append(_Frame({} if is_map else [], parts, event.anchor, self.count - 1))

    def alias(self, event) -> None:
        if event.anchor not in self.anchors:
            message = f"the alias *{event.anchor} names no complete anchor before it (an anchor cannot contain itself)"
            raise _Refused("syntax", message, _place(event))
        value, size = self.anchors[event.anchor]
        self.count_values(size, event)
        self.add(copy.deepcopy(value), event, size, text=value if isinstance(value, str) else None)

    def add(self, value, event, size: int, *, text=None, anchor=None, opened=False) -> None:
        """Place a finished value: as the document, a list item, a mapping key or a mapping value."""
        anchor = anchor if opened else getattr(event, "anchor", None)
        if anchor is not None and not isinstance(event, AliasEvent):
            self.anchors[anchor] = (value, size)
        if not self.stack:
            self.root = value
            if event is not None:
                self.positions.values[()] = _place(event)
            return
        frame = self.stack[-1]
        if isinstance(frame.container, list):
            if not opened and frame.parts is not None:
                self.positions.values[(*frame.parts, len(frame.container))] = _place(event)
            frame.container.append(value)
            return
        if frame.key is _NO_KEY:
            self.take_key(frame, value, event, text)
            return
        if not frame.skip:
            if not opened and frame.parts is not None:
                self.positions.values[(*frame.parts, frame.key)] = _place(event)
            frame.container[frame.key] = value
        frame.key, frame.skip = _NO_KEY, False

    def take_key(self, frame: _Frame, value, event, text) -> None:
        if not isinstance(text, str):
            raise _Refused("syntax", "a mapping key must be text", _place(event))
        if text == "<<" and isinstance(event, ScalarEvent) and event.implicit[0]:
            message = "YAML merge keys (<<) are not supported: write the keys out (anchors and aliases are fine)"
            raise _Refused("syntax", message, _place(event))
        frame.key = text
        line, column = _place(event)
        if text in frame.container or text in frame.key_lines:
            frame.skip = True
            if frame.parts is not None:
                parts = (*frame.parts, text)
                message = f"the key '{text}' appears twice in this mapping (first on line {frame.key_lines[text]})"
                self.problems.append(Problem(path_of(parts), line, column, "duplicate_key", message))
            return
        frame.key_lines[text] = line
        if frame.parts is not None:
            self.positions.keys[(*frame.parts, text)] = (line, column)

    def scalar(self, event):
        text, tag = event.value, event.tag
        if tag is None and event.implicit[0]:
            return _core_value(text, event)
        if tag in (None, "!", _YAML + "str"):
            return text
        if tag in (_YAML + "int", _YAML + "float", _YAML + "bool", _YAML + "null"):
            value = _core_value(text, event)
            wanted = tag.removeprefix(_YAML)
            ok = {
                "int": isinstance(value, int) and not isinstance(value, bool),
                "float": isinstance(value, int | float) and not isinstance(value, bool),
                "bool": isinstance(value, bool),
                "null": value is None,
            }[wanted]
            if not ok:
                raise _Refused("syntax", f"{text!r} is not a valid !!{wanted}", _place(event))
            return float(value) if wanted == "float" else value
        raise _Refused("syntax", _tag_message(tag), _place(event))


def _core_value(text: str, event):
    """A plain scalar by the YAML 1.2 core schema: null, booleans, integers and floats; the rest is text."""
    if _NULL.match(text):
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT.match(text):
        return int(text)
    if _OCT.match(text):
        return int(text[2:], 8)
    if _HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        value = float(text)
        if math.isfinite(value):
            return value
    if _NOT_A_NUMBER.match(text) or _FLOAT.match(text):
        raise _Refused("syntax", f"{text} is not a JSON number (infinity and NaN are not allowed)", _place(event))
    return text


def _tag_message(tag: str) -> str:
    shown = "!!" + tag.removeprefix(_YAML) if tag.startswith(_YAML) else tag
    return f"the YAML tag {shown} is not supported: a definition is plain data (mappings, lists, text, numbers, booleans, null)"


def _place(event) -> tuple[int, int]:
    return event.start_mark.line + 1, event.start_mark.column + 1


_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_SPACE = re.compile(r"[ \t\n\r]*")


class _JSONSyntax(Exception):
    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


class _JSONReader:
    """A recursive-descent JSON reader (strict RFC 8259) that records positions; depth is capped before
    Python's own recursion limit could matter."""

    def __init__(self, source: str):
        self.source = source
        self.positions = Positions()
        self.problems: list[Problem] = []
        self.line_starts = [0] + [match.end() for match in re.finditer(r"\n", source)]

    def place(self, index: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, index)
        return line, index - self.line_starts[line - 1] + 1

    def read(self) -> tuple[object, Positions]:
        try:
            index = self.skip(0)
            if index == len(self.source):
                raise _JSONSyntax(index, "the document is empty")
            value, index = self.value(index, (), 0)
            index = self.skip(index)
            if index != len(self.source):
                raise _JSONSyntax(index, "unexpected text after the end of the document")
        except _JSONSyntax as error:
            line, column = self.place(min(error.index, len(self.source)))
            raise DefinitionInvalid([*self.problems, Problem("", line, column, "syntax", f"JSON: {error}")]) from None
        except _Refused as refused:
            raise DefinitionInvalid([*self.problems, refused.problem]) from None
        if self.problems:
            raise DefinitionInvalid(self.problems)
        return value, self.positions

    def skip(self, index: int) -> int:
        return _SPACE.match(self.source, index).end()

    def value(self, index: int, parts: Parts | None, depth: int):
        if parts is not None:
            self.positions.values[parts] = self.place(index)
        char = self.source[index : index + 1]
        if char in ("{", "["):
            if depth >= MAX_DEPTH:
                raise _Refused("too_large", f"the document nests deeper than {MAX_DEPTH} levels", self.place(index))
            return (self.object if char == "{" else self.array)(index + 1, parts, depth + 1)
        if char == '"':
            return self.string(index)
        for literal, result in (("true", True), ("false", False), ("null", None)):
            if self.source.startswith(literal, index):
                return result, index + len(literal)
        match = _NUMBER.match(self.source, index)
        if match and match.end() > index:
            text = match.group()
            number = float(text) if match.group(1) or match.group(2) else int(text)
            if isinstance(number, float) and not math.isfinite(number):
                raise _JSONSyntax(index, f"{text} is too large a number")
            return number, match.end()
        raise _JSONSyntax(index, "expected a value" if char else "the document ends where a value was expected")

    def string(self, index: int) -> tuple[str, int]:
        try:
            return scanstring(self.source, index + 1, True)
        except JSONDecodeError as error:
            raise _JSONSyntax(error.pos, error.msg) from None

    def object(self, index: int, parts: Parts | None, depth: int) -> tuple[dict, int]:
        result: dict = {}
        lines: dict[str, int] = {}
        index = self.skip(index)
        if self.source.startswith("}", index):
            return result, index + 1
        while True:
            if not self.source.startswith('"', index):
                raise _JSONSyntax(index, "expected a key in double quotes")
            key_place = self.place(index)
            key, index = self.string(index)
            index = self.skip(index)
            if not self.source.startswith(":", index):
                raise _JSONSyntax(index, "expected ':' after the key")
            index = self.skip(index + 1)
            duplicate = key in lines
            child = None if parts is None or duplicate else (*parts, key)
            if duplicate and parts is not None:
                message = f"the key '{key}' appears twice in this object (first on line {lines[key]})"
                self.problems.append(Problem(path_of((*parts, key)), *key_place, "duplicate_key", message))
            value, index = self.value(index, child, depth)
            if not duplicate:
                lines[key] = key_place[0]
                result[key] = value
                if child is not None:
                    self.positions.keys[child] = key_place
            index = self.skip(index)
            if self.source.startswith(",", index):
                index = self.skip(index + 1)
                continue
            if self.source.startswith("}", index):
                return result, index + 1
            raise _JSONSyntax(index, "expected ',' or '}'")

    def array(self, index: int, parts: Parts | None, depth: int) -> tuple[list, int]:
        result: list = []
        index = self.skip(index)
        if self.source.startswith("]", index):
            return result, index + 1
        while True:
            child = None if parts is None else (*parts, len(result))
            value, index = self.value(index, child, depth)
            result.append(value)
            index = self.skip(index)
            if self.source.startswith(",", index):
                index = self.skip(index + 1)
                continue
            if self.source.startswith("]", index):
                return result, index + 1
            raise _JSONSyntax(index, "expected ',' or ']'")
