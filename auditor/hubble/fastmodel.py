"""Positional constructors for the frozen, slotted model dataclasses on the conversion hot path.

A frozen dataclass's generated `__init__` sets every field through `object.__setattr__(self,
"name", value)`; for the 26-field Flow that is about half the cost of building it.  Calling each
slot's member descriptor directly does the same thing (the instance ends up identical: same
slots, same eq/hash/repr) in roughly half the time.  The caller names the fields it passes;
fields added to the model later get their defaults.  Classes with `__post_init__`, `init=False`
fields or no slots get their ordinary constructor instead, so a model change can make this
slower but never wrong.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def positional_constructor(cls: type[T], names: Sequence[str]) -> Callable[..., T]:
    """`build(v1, v2, ...)` setting the fields `names` of `cls` in that order, the others to their defaults.

    Raises TypeError at once if `names` holds a non-field or leaves out a field without default.
    """
    fields = {field.name: field for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [name for name in names if name not in fields]
    required = [f.name for f in fields.values() if f.name not in names and _has_no_default(f)]
    if unknown or required:
        raise TypeError(f"{cls.__name__}: not fields {unknown}, missing fields without default {required}")
    slotted = all(isinstance(cls.__dict__.get(name), _MEMBER_DESCRIPTOR) for name in fields)
    if hasattr(cls, "__post_init__") or not slotted or not all(f.init for f in fields.values()):
        return lambda *values: cls(**dict(zip(names, values, strict=True)))
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [f"def build({', '.join(f'v{index}' for index in range(len(names)))}):", "    obj = _new(_cls)"]
    for index, name in enumerate(names):
        namespace[f"_set{index}"] = cls.__dict__[name].__set__
        lines.append(f"    _set{index}(obj, v{index})")
    for name, field in fields.items():
        if name not in names:
            namespace[f"_set_{name}"] = cls.__dict__[name].__set__
            if field.default_factory is not dataclasses.MISSING:
                namespace[f"_factory_{name}"] = field.default_factory
                lines.append(f"    _set_{name}(obj, _factory_{name}())")
            else:
                namespace[f"_default_{name}"] = field.default
                lines.append(f"    _set_{name}(obj, _default_{name})")
    lines.append("    return obj")
    exec("\n".join(lines), namespace)  # generated from dataclass field metadata only
    build: Callable[..., T] = namespace["build"]
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"
    return build


def _has_no_default(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


class _Probe:
    __slots__ = ("x",)


_MEMBER_DESCRIPTOR = type(_Probe.__dict__["x"])


def slot_filler(cls: type[T], names: Sequence[str]) -> Callable[..., None]:
    """`fill(obj, v1, v2, ...)` setting the fields `names` of an instance of `cls` in that order.

    Only for an instance a builder of this module has just made and nobody else has seen yet
    (completing it is then the same as having built it whole).  Raises TypeError for non-fields.
    """
    fields = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [name for name in names if name not in fields]
    if unknown:
        raise TypeError(f"{cls.__name__}: not fields {unknown}")
    slotted = all(isinstance(cls.__dict__.get(name), _MEMBER_DESCRIPTOR) for name in names)
    namespace: dict[str, Any] = {}
    lines = [f"def fill(obj, {', '.join(f'v{index}' for index in range(len(names)))}):"]
    for index, name in enumerate(names):
        namespace[f"_set{index}"] = cls.__dict__[name].__set__ if slotted else _attribute_setter(name)
        lines.append(f"    _set{index}(obj, v{index})")
    exec("\n".join(lines), namespace)  # generated from dataclass field metadata only
    fill: Callable[..., None] = namespace["fill"]
    fill.__qualname__ = fill.__name__ = f"fill_{cls.__name__}"
    return fill


def _attribute_setter(name: str) -> Callable[[Any, Any], None]:
    return lambda obj, value: object.__setattr__(obj, name, value)
