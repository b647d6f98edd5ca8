"""Positional slot-descriptor constructors build the same frozen dataclass instances as __init__."""

from __future__ import annotations

import dataclasses

import pytest

from auditor.hubble.fastmodel import positional_constructor, slot_filler
from auditor.model.flows import Endpoint, Flow, Verdict


@dataclasses.dataclass(frozen=True, slots=True)
class Checked:
    value: int
    doubled: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "doubled", self.value * 2)


class TestPositionalConstructor:
    def test_equal_to_init(self) -> None:
        """An Endpoint built positionally equals, hashes and prints like one built by __init__."""
        build = positional_constructor(Endpoint, ("ip", "port", "labels"))
        built = build("10.0.0.1", 80, ("k8s:app=web",))
        expected = Endpoint(ip="10.0.0.1", port=80, labels=("k8s:app=web",))
        assert built == expected
        assert hash(built) == hash(expected)
        assert repr(built) == repr(expected)

    def test_unnamed_fields_get_defaults(self) -> None:
        """Fields the caller does not name get their default or default_factory value."""
        build = positional_constructor(Flow, ("time_ns", "verdict", "source", "destination"))
        flow = build(5, Verdict.DROPPED, Endpoint(), Endpoint())
        assert flow == Flow(time_ns=5, verdict=Verdict.DROPPED, source=Endpoint(), destination=Endpoint())
        assert flow.tcp_flags == frozenset()

    def test_still_frozen(self) -> None:
        """The instance stays immutable."""
        flow = positional_constructor(Endpoint, ("ip",))("10.0.0.1")
        with pytest.raises(dataclasses.FrozenInstanceError):
            flow.ip = "x"  # type: ignore[misc]

    def test_post_init_classes_use_init(self) -> None:
        """A class with __post_init__ is built through its own constructor, so the hook still runs."""
        assert positional_constructor(Checked, ("value",))(21).doubled == 42

    def test_missing_required_field_refused(self) -> None:
        """Leaving out a field without default is refused when the builder is made."""
        with pytest.raises(TypeError, match="missing fields without default"):
            positional_constructor(Flow, ("time_ns",))


@dataclasses.dataclass(frozen=True)
class Unslotted:
    first: int = 0
    second: str = ""


class TestSlotFiller:
    def test_completing_equals_building_whole(self) -> None:
        """A Flow built from some fields and then filled with the rest equals one built whole."""
        build = positional_constructor(Flow, ("time_ns", "verdict", "source", "destination"))
        fill = slot_filler(Flow, ("uuid", "node_name"))
        flow = build(5, Verdict.DROPPED, Endpoint(), Endpoint())
        fill(flow, "u-1", "node-a")
        expected = Flow(time_ns=5, verdict=Verdict.DROPPED, source=Endpoint(), destination=Endpoint(),
                        uuid="u-1", node_name="node-a")
        assert flow == expected
        assert hash(flow) == hash(expected)

    def test_unslotted_class_is_filled_too(self) -> None:
        """A dataclass without slots is filled through object.__setattr__."""
        obj = Unslotted()
        slot_filler(Unslotted, ("second",))(obj, "x")
        assert obj == Unslotted(0, "x")

    def test_unknown_field_refused(self) -> None:
        """Naming a non-field raises TypeError at once."""
        with pytest.raises(TypeError, match="not fields"):
            slot_filler(Flow, ("nope",))
