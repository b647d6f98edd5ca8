"""Label selectors (metav1.LabelSelector), shared by every policy kind."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

EMPTY_LABELS: Mapping[str, str] = MappingProxyType({})


def no_labels() -> Mapping[str, str]:
    return EMPTY_LABELS


@dataclass(frozen=True, slots=True)
class LabelSelectorRequirement:
    """One matchExpressions entry."""

    key: str
    operator: str
    """In, NotIn, Exists or DoesNotExist (validated by the policy engine)."""
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """metav1.LabelSelector; an empty selector matches everything."""

    match_labels: Mapping[str, str] = field(default_factory=no_labels, hash=False)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions
