"""Write docs/configuration.md from auditor.app.settings.RUN_OPTIONS; `--check` fails when stale."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from auditor.app.settings import RUN_OPTIONS, Option

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

INTRO = """# Configuration of `auditor run`

Every setting can be given three ways. When several are present, the first wins:

1. a command-line flag, e.g. `--hubble-server relay:80`;
2. an environment variable `AUDITOR_<FLAG>` (upper case, dashes become underscores), e.g.
   `AUDITOR_HUBBLE_SERVER=relay:80`; lists are comma- or space-separated, booleans `true`/`false`;
3. a key of the YAML file named by `--config` (or `AUDITOR_CONFIG`), spelled like the flag with
   dashes or underscores, e.g. `hubble-server: relay:80`; lists may be YAML lists.

Then the default applies. Unknown keys in the file, values of the wrong type and values outside
the allowed choices are errors that name where the value came from; `auditor run` exits 1.
Durations take `ms`, `s`, `m`, `h` or `d` (`90s`, `24h`); a bare number is seconds.

This page is generated from the code (`python scripts/gen_config_doc.py`); CI fails when it is stale.

| flag | environment | type | default | meaning |
|---|---|---|---|---|
"""


def _default(option: Option) -> str:
    if option.kind == "list":
        return "(none)" if not option.default else ", ".join(option.default)
    if option.kind == "bool":
        return "false" if not option.default else "true"
    return f"`{option.default}`"


def _kind(option: Option) -> str:
    return " \\| ".join(option.choices) if option.choices else option.kind


def render() -> str:
    rows = [
        f"| `--{o.name}` | `{o.env}` | {_kind(o)} | {_default(o)} | {o.help} |\n" for o in RUN_OPTIONS
    ]
    example = "\n## Example file\n\n```yaml\n" + "".join(
        f"{o.name}: {_example(o)}\n" for o in RUN_OPTIONS if o.name in _EXAMPLE
    ) + "```\n"
    return INTRO + "".join(rows) + example


_EXAMPLE = {
    "hubble-server": "hubble-relay.kube-system.svc:443",
    "tls": "true",
    "tls-ca-cert-files": "[/var/lib/auditor-tls/ca.crt]",
    "tls-server-name": "instance.hubble-relay.cilium.io",
    "store": "sqlite:///var/lib/auditor/auditor.db",
    "log-format": "json",
    "retention": "14d",
}


def _example(option: Option) -> str:
    return _EXAMPLE[option.name]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    text = render()
    if parser.parse_args().check:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is stale: run python scripts/gen_config_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
