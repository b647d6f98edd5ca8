"""`python -m auditor` runs the CLI."""

import os
import sys


def _unshadow() -> None:
    """Run from the directory that holds a checkout named `auditor`, `-m` finds that directory first: a
    namespace package without `__version__` that shadows an editable install.  Drop it and the working
    directory from the path, so the real package is imported."""
    package = sys.modules.get("auditor")
    if package is None or getattr(package, "__file__", None) is not None:
        return
    cwd = os.path.realpath(os.getcwd())
    sys.path[:] = [entry for entry in sys.path if os.path.realpath(entry or ".") != cwd]
    for name in [n for n in sys.modules if n == "auditor" or n.startswith("auditor.")]:
        del sys.modules[name]


_unshadow()

from auditor.cli import main  # noqa: E402  (after the path is repaired)

raise SystemExit(main())
