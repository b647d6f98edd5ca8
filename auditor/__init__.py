"""auditor: explains Cilium/Hubble policy verdicts against the NetworkPolicies in force."""

from importlib import metadata

try:
    __version__ = metadata.version("cilium-auditor")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
