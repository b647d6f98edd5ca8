"""FlowFilter.experimental.cel_expression: CEL over the flow as `_flow`, with cel-python (celpy).

Hubble (cilium pkg/hubble/filters/cel_expression.go) compiles each expression with cel-go in the
container `flow`, exposes the flow as the variable `_flow` (a `flow.Flow` message), requires a
boolean result, and treats an evaluation error as "no match".  Here the flow becomes CEL values
by its descriptor (uint32/uint64 as CEL uint, enums as int, unset oneof members absent so
`has(_flow.l4.TCP)` works, other unset messages present with default values as protobuf field
access gives), and every enum of flow.proto is a map of its names, e.g. `Verdict.DROPPED` or
`flow.Verdict.DROPPED`.  cel-python has no type checker: an expression is checked by running it
on an empty flow, which must give a bool unless it fails only on a missing field or map key.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from typing import Any

import celpy
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError
from google.protobuf.descriptor import FieldDescriptor

from auditor._proto.flow import flow_pb2
from auditor.errors import ConfigError

FLOW_VARIABLE = "_flow"
_UINTS = {FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED32,
          FieldDescriptor.TYPE_FIXED64}
_INTS = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT32,
         FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SFIXED64,
         FieldDescriptor.TYPE_ENUM}
_WRAPPERS = {"google.protobuf.BoolValue", "google.protobuf.UInt32Value", "google.protobuf.UInt64Value",
             "google.protobuf.Int32Value", "google.protobuf.Int64Value", "google.protobuf.StringValue"}


def _enums() -> dict[str, Any]:
    """Every top-level enum of flow.proto as a map name -> number."""
    enums = {
        name: celtypes.MapType({celtypes.StringType(value.name): celtypes.IntType(value.number)
                                for value in enum.values})
        for name, enum in flow_pb2.DESCRIPTOR.enum_types_by_name.items()
    }
    package = celtypes.MapType({celtypes.StringType(name): value for name, value in enums.items()})
    return {**enums, "flow": package}


_ENUMS = _enums()
_MEMBER_RE = re.compile(r"no such member in mapping: '([^']*)'")


def _field_names() -> frozenset[str]:
    names: set[str] = set()
    pending = list(flow_pb2.DESCRIPTOR.message_types_by_name.values())
    while pending:
        descriptor = pending.pop()
        names.update(descriptor.fields_by_name)
        pending.extend(descriptor.nested_types)
    return frozenset(names)


_FIELD_NAMES = _field_names()


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return to_cel(value)
    if kind in _UINTS:
        return celtypes.UintType(value)
    if kind in _INTS:
        return celtypes.IntType(value)
    if kind == FieldDescriptor.TYPE_BOOL:
        return celtypes.BoolType(value)
    if kind == FieldDescriptor.TYPE_BYTES:
        return celtypes.BytesType(value)
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return celtypes.DoubleType(value)
    return celtypes.StringType(value)


def to_cel(message: Any) -> Any:
    """A protobuf message as CEL values (see the module docstring for the mapping)."""
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        return celtypes.TimestampType(message.ToDatetime(tzinfo=datetime.UTC))
    if name in _WRAPPERS:
        return _scalar(message.DESCRIPTOR.fields_by_name["value"], message.value)
    fields: dict[Any, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.is_repeated:
            fields[celtypes.StringType(field.name)] = celtypes.ListType(_scalar(field, item) for item in value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not message.HasField(field.name) and (
            field.containing_oneof is not None or field.message_type.full_name in _WRAPPERS
            or field.message_type.full_name.startswith("google.protobuf.")
        ):
            continue  # absent, so has() says false
        elif field.containing_oneof is not None and not message.HasField(field.name):
            continue
        else:
            fields[celtypes.StringType(field.name)] = _scalar(field, value)
    return celtypes.MapType(fields)


def _check(program: Any, expression: str) -> None:
    """Refuse what cel-go's checker would: unknown names, results that are not bool."""
    try:
        result = program.evaluate({FLOW_VARIABLE: to_cel(flow_pb2.Flow()), **_ENUMS})
    except CELEvalError as exc:
        text = str(exc.args[0]) if exc.args else str(exc)
        member = _MEMBER_RE.search(text)
        if "undeclared reference" in text or (member and member.group(1) not in _FIELD_NAMES):
            raise ConfigError(f"CEL expression {expression!r}: {text.split(' (in activation')[0]}") from exc
        return
    if not isinstance(result, celtypes.BoolType | bool):
        raise ConfigError(f"CEL expression {expression!r}: got {type(result).__name__}, wanted a bool result")


def compile_cel(expressions: Sequence[str]) -> Any:
    """A predicate on flow_pb2.Flow: true when any expression evaluates to true."""
    environment = celpy.Environment()
    programs = []
    for expression in expressions:
        if not expression.strip():
            raise ConfigError("CEL expression: empty")
        try:
            program = environment.program(environment.compile(expression))
        except CELParseError as exc:
            raise ConfigError(f"CEL expression {expression!r}: cannot parse: {exc}") from exc
        _check(program, expression)
        programs.append(program)

    def match(flow: Any) -> bool:
        activation = {FLOW_VARIABLE: to_cel(flow), **_ENUMS}
        for program in programs:
            try:
                result = program.evaluate(activation)
            except CELEvalError:
                continue  # Hubble logs and counts this as no match
            if isinstance(result, celtypes.BoolType | bool) and result:
                return True
        return False

    return match
