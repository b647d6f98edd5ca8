"""Positional slot-descriptor constructors build the same frozen dataclass instances as __init__."""

from __future__ import annotations

import dataclasses

import pytest

from auditor.hubble.fastmodel import positional_constructor
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
