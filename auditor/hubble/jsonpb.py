"""A fast protojson reader for the Hubble messages: JSON dict -> constructor kwargs -> one upb message.

`google.protobuf.json_format.ParseDict` walks every field in pure Python and manages only
~6,000 Hubble lines/s here.  This module compiles, once per message type, a table from JSON key
to (field name, fast JSON type, converter) and turns a decoded JSON object into nested
constructor keyword arguments, so the upb runtime builds the whole message in one C call.
Values whose JSON type is already what the constructor takes (strings, plain integers, bools,
lists of strings) are passed straight through; upb checks them again (ranges, element types).

Semantics follow protojson as Hubble writes it (`UseProtoNames`): proto names and lowerCamel
JSON names are both accepted, 64-bit integers may be strings, enums are names (or numbers),
Timestamps are RFC 3339, wrappers are bare values, `null` means "not set".  Unknown keys are
ignored (newer Cilium adds fields).  An unknown enum *name* does not fail the message: the field
is left at its zero value and a note is appended to the caller's `notes`.  Anything else that
does not fit raises `JsonShapeError` naming the field path (built only when there is an error).
`google.protobuf.Any` values are dropped (their types are not ours).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

Note = list[str]
"""[field path, what is odd]; the path is completed on the way back up."""
Converter = Callable[[Any, list[Note]], Any]
"""(json value, notes) -> value the message constructor accepts, or _SKIP."""

_SKIP: Any = object()
"""Returned by a converter when the field is to be left unset."""

_INT_TYPES = frozenset({
    FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
})
_WRAPPERS = frozenset({
    "google.protobuf.BoolValue", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
    "google.protobuf.Int64Value", "google.protobuf.UInt64Value", "google.protobuf.StringValue",
    "google.protobuf.DoubleValue", "google.protobuf.FloatValue",
})


class JsonShapeError(ValueError):
    """A JSON value does not fit the protobuf field it is meant for; `path` names the field."""

    def __init__(self, reason: str, path: str = "") -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path else reason)

    def under(self, key: str) -> JsonShapeError:
        """The same error seen from the enclosing object, whose field `key` held the value."""
        return JsonShapeError(self.reason, _join(key, self.path))


def _join(key: str, path: str) -> str:
    if not path:
        return key
    return f"{key}{path}" if path.startswith("[") else f"{key}.{path}"


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _to_int(value: Any, notes: list[Note]) -> Any:
    if type(value) is int:
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    elif isinstance(value, float) and value.is_integer():
        return int(value)
    raise JsonShapeError(f"expected an integer, got {_describe(value)}")


def _to_float(value: Any, notes: list[Note]) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if value in ("NaN", "Infinity", "-Infinity"):
        return float(value)
    raise JsonShapeError(f"expected a number, got {_describe(value)}")


def _to_str(value: Any, notes: list[Note]) -> Any:
    if isinstance(value, str):
        return value
    raise JsonShapeError(f"expected a string, got {_describe(value)}")


def _to_bool(value: Any, notes: list[Note]) -> Any:
    if isinstance(value, bool):
        return value
    raise JsonShapeError(f"expected true or false, got {_describe(value)}")


def _to_bytes(value: Any, notes: list[Note]) -> Any:
    if isinstance(value, str):
        try:
            return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_" if "-" in value else None)
        except ValueError:
            pass
    raise JsonShapeError(f"expected base64 bytes, got {_describe(value)}")


def _enum_converter(field: FieldDescriptor) -> Converter:
    enum_type = field.enum_type
    assert enum_type is not None
    by_name = {value.name: value.number for value in enum_type.values}

    def convert(value: Any, notes: list[Note]) -> Any:
        if isinstance(value, str):
            number = by_name.get(value)
            if number is None:
                notes.append(["", f"unknown {enum_type.full_name} name {value!r} (left unset)"])
                return _SKIP
            return number
        if type(value) is int:
            return value
        raise JsonShapeError(f"expected a {enum_type.full_name} name, got {_describe(value)}")

    return convert


_EPOCH_CACHE: dict[str, int] = {}


def parse_timestamp(text: str) -> tuple[int, int]:
    """RFC 3339 (`2021-11-10T10:41:26.095336300Z`, any offset) -> (seconds, nanos) since the epoch."""
    if len(text) < 20 or text[10] not in "Tt ":
        raise ValueError(text)
    base, rest = text[:19], text[19:]
    nanos = 0
    if rest[:1] == ".":
        digits = len(rest) - len(rest[1:].lstrip("0123456789"))
        fraction = rest[1:digits]
        if not fraction or len(fraction) > 9:
            raise ValueError(text)
        nanos = int(fraction.ljust(9, "0"))
        rest = rest[digits:]
    seconds = _EPOCH_CACHE.get(base)
    if seconds is None:
        if len(_EPOCH_CACHE) > 4096:
            _EPOCH_CACHE.clear()
        seconds = int(datetime.fromisoformat(base).replace(tzinfo=UTC).timestamp())
        _EPOCH_CACHE[base] = seconds
    if rest in ("Z", "z"):
        return seconds, nanos
    offset = datetime.strptime(rest, "%z").utcoffset()
    if offset is None:
        raise ValueError(text)
    return seconds - int(offset.total_seconds()), nanos


def _to_timestamp(value: Any, notes: list[Note]) -> Any:
    if isinstance(value, str):
        try:
            seconds, nanos = parse_timestamp(value)
        except ValueError:
            pass
        else:
            return {"seconds": seconds, "nanos": nanos}
    raise JsonShapeError(f"expected an RFC 3339 timestamp, got {_describe(value)}")


def _skip(value: Any, notes: list[Note]) -> Any:
    return _SKIP


def _scalar_converter(field: FieldDescriptor) -> tuple[type | None, Converter]:
    """(JSON type that needs no conversion, converter) for a singular scalar field."""
    if field.type == FieldDescriptor.TYPE_ENUM:
        return None, _enum_converter(field)
    if field.type in _INT_TYPES:
        return int, _to_int
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return None, _to_float
    if field.type == FieldDescriptor.TYPE_BOOL:
        return bool, _to_bool
    if field.type == FieldDescriptor.TYPE_BYTES:
        return None, _to_bytes
    return str, _to_str


def _field_converter(field: FieldDescriptor) -> tuple[type | None, Converter]:
    if field.message_type is None:
        return _scalar_converter(field)
    name = field.message_type.full_name
    if name == "google.protobuf.Timestamp":
        return None, _to_timestamp
    if name in _WRAPPERS:
        _, inner = _scalar_converter(field.message_type.fields_by_name["value"])

        def wrapper(value: Any, notes: list[Note]) -> Any:
            converted = inner(value, notes)
            return _SKIP if converted is _SKIP else {"value": converted}

        return None, wrapper
    if name.startswith("google.protobuf."):
        return None, _skip  # Any, FieldMask, ...: not part of what we read from JSON
    return None, message_converter(field.message_type)


def _repeated(convert: Converter) -> Converter:
    def repeated(value: Any, notes: list[Note]) -> Any:
        if not isinstance(value, list):
            raise JsonShapeError(f"expected a list, got {_describe(value)}")
        items = []
        for index, item in enumerate(value):
            mark = len(notes)
            try:
                converted = convert(item, notes)
            except JsonShapeError as exc:
                raise exc.under(f"[{index}]") from None
            _prefix_notes(notes, mark, f"[{index}]")
            if converted is not _SKIP:
                items.append(converted)
        return items

    return repeated


def _prefix_notes(notes: list[Note], start: int, key: str) -> None:
    for note in notes[start:]:
        note[0] = _join(key, note[0])


_MESSAGE_CONVERTERS: dict[str, Converter] = {}


def message_converter(descriptor: Descriptor | Any) -> Converter:
    """The converter from a JSON object to constructor kwargs for `descriptor` (built once, cached)."""
    cached = _MESSAGE_CONVERTERS.get(descriptor.full_name)
    if cached is not None:
        return cached
    table: dict[str, tuple[str, type | None, Converter]] = {}

    def convert(value: Any, notes: list[Note]) -> Any:
        if type(value) is not dict:
            raise JsonShapeError(f"expected an object, got {_describe(value)}")
        kwargs: dict[str, Any] = {}
        mark = len(notes)
        for key, item in value.items():
            entry = table.get(key)
            if entry is None or item is None:
                continue
            name, plain, field_convert = entry
            if type(item) is plain:
                kwargs[name] = item
                continue
            try:
                converted = field_convert(item, notes)
            except JsonShapeError as exc:
                raise exc.under(key) from None
            if len(notes) != mark:
                _prefix_notes(notes, mark, key)
                mark = len(notes)
            if converted is not _SKIP:
                kwargs[name] = converted
        return kwargs

    _MESSAGE_CONVERTERS[descriptor.full_name] = convert  # before recursing: messages may nest
    for field in descriptor.fields:
        plain, field_convert = _field_converter(field)
        if field.is_repeated:
            # a list of strings goes straight to upb, which type-checks each element
            plain = list if plain is str else None
            field_convert = _repeated(field_convert)
        table[field.name] = (field.name, plain, field_convert)
        table.setdefault(field.json_name, (field.name, plain, field_convert))
    return convert
