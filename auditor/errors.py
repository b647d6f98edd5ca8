"""Every error auditor raises on purpose.  Foreign errors are mapped at the edge with `raise ... from`.

    AuditorError
    ├── ConfigError            a flag, env var or config file value is wrong
    ├── InputError             an input file is unusable (names the file and line)
    │   ├── FlowParseError     one flow line could not be decoded
    │   └── ManifestError      one Kubernetes object or manifest document is unusable
    ├── InvalidObjectError     an object the API server would reject (names namespace/name and field)
    ├── FlowSourceError        the Hubble stream failed (connect, TLS, protocol)
    │   └── TLSConfigError     certificates or keys could not be loaded
    ├── InventoryError         the Kubernetes API failed (list, watch, auth)
    └── StoreError             the findings store failed (open, schema, write)
"""

from __future__ import annotations


class AuditorError(Exception):
    """Base of every error auditor raises on purpose."""


class ConfigError(AuditorError):
    """A flag, environment variable or config file value is wrong."""


class InputError(AuditorError):
    """An input file is unusable."""

    def __init__(self, message: str, *, path: str = "", line: int = 0) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(f"{where}{message}")
        self.reason = message


class FlowParseError(InputError):
    """One flow line could not be decoded."""


class ManifestError(InputError):
    """One Kubernetes object or manifest document is unusable."""


class InvalidObjectError(AuditorError):
    """An object the API server would reject; `ref` is kind namespace/name, `field` the JSON path."""

    def __init__(self, ref: str, field: str, message: str) -> None:
        self.ref = ref
        self.field = field
        self.reason = message
        super().__init__(f"{ref}: {field}: {message}")


class FlowSourceError(AuditorError):
    """The Hubble stream failed."""


class TLSConfigError(FlowSourceError):
    """Certificates or keys for Hubble TLS could not be loaded."""


class InventoryError(AuditorError):
    """The Kubernetes API failed."""


class StoreError(AuditorError):
    """The findings store failed."""
