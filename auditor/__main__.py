"""`python -m auditor` runs the CLI."""

from auditor.cli import main

raise SystemExit(main())
