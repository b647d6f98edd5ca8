"""Each flow is classified once, by the model's one classifier; the Hubble edge does not import the core."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from auditor.hubble.files import FileFlowSource
from auditor.model.flowclass import classify
from auditor.model.flows import Flow

DEMO_FLOWS = Path(__file__).resolve().parent.parent / "auditor" / "data" / "demo" / "flows.jsonl"


def test_light_conversion_keeps_the_class_it_computed() -> None:
    """Every light-converted flow carries the class classify gives it, so the correlator need not redo it."""
    flows = [e for e in FileFlowSource([str(DEMO_FLOWS)], light=True).events() if isinstance(e, Flow)]
    classified = [f for f in flows if f.flow_class is not None]
    assert classified
    assert all(f.flow_class is classify(f) for f in classified)


def test_flow_class_is_not_part_of_the_flow_value() -> None:
    """A flow with its class cached equals the same flow without it (a cache, not data)."""
    flow = next(e for e in FileFlowSource([str(DEMO_FLOWS)], light=True).events()
                if isinstance(e, Flow) and e.flow_class is not None)
    assert dataclasses.replace(flow, flow_class=None) == flow


def test_the_hubble_edge_does_not_import_the_core() -> None:
    """Loading the protobuf conversion loads neither auditor.findings nor auditor.policy."""
    code = ("import sys, auditor.hubble.convert, auditor.hubble.files; "
            "print(sorted(m for m in sys.modules if m.startswith(('auditor.findings', 'auditor.policy'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"
