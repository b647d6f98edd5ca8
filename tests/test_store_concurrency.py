"""Store concurrency: writers and readers in threads and in another process see whole batches only."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

from auditor.store import Store, open_store
from tests.test_store_helpers import finding

KEYS = 40
BATCHES = 60
REPO = Path(__file__).resolve().parents[1]

_READER = """
import json, sys
from auditor.store import open_store
store = open_store(sys.argv[1])
reads, torn, totals = 0, 0, []
while True:
    counts = [f.count for f in store.findings()]
    reads += 1
    if counts and len(set(counts)) != 1:
        torn += 1
    totals.append(sum(counts))
    if reads == 1:
        print("ready", flush=True)
    if sum(counts) >= int(sys.argv[2]) or reads > 100000:
        break
print(json.dumps({"reads": reads, "torn": torn, "monotonic": totals == sorted(totals), "last": totals[-1]}))
"""

_COUNT_FIRST = (
    "import sys; from auditor.store import open_store; print(open_store(sys.argv[1]).findings()[0].count)"
)


def _write_batches(store: Store, batches: int = BATCHES, port_base: int = 0) -> None:
    """Each batch bumps every one of KEYS findings by one, in one transaction."""
    for _ in range(batches):
        store.upsert_findings([finding(port=port_base + p) for p in range(KEYS)])


class TestThreads:
    def test_reader_thread_sees_whole_batches(self, tmp_path: Path) -> None:
        """While a thread writes batches, a reader thread never sees half a batch or counts going back."""
        store = open_store(f"sqlite:///{tmp_path}/a.db")
        seen: list[list[int]] = []
        writer = threading.Thread(target=_write_batches, args=(store,))
        writer.start()
        while writer.is_alive() or not seen:
            seen.append([f.count for f in store.findings()])
        writer.join()
        store.close()
        assert all(len(set(counts)) <= 1 for counts in seen)
        totals = [sum(counts) for counts in seen]
        assert totals == sorted(totals)

    def test_concurrent_writers_lose_nothing(self, tmp_path: Path) -> None:
        """Four writer threads on one store: every increment lands."""
        with open_store(f"sqlite:///{tmp_path}/a.db") as store:
            threads = [threading.Thread(target=_write_batches, args=(store, 15)) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert {f.count for f in store.findings()} == {60}

    def test_memory_store_shared_between_threads(self) -> None:
        """An in-memory store is one database for every thread."""
        with open_store("sqlite:///:memory:") as store:
            threads = [threading.Thread(target=_write_batches, args=(store, 5, 100 * i)) for i in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(store.findings()) == 3 * KEYS
            assert store.snapshot().open_total == 3 * KEYS


class TestProcesses:
    def test_reader_process_while_thread_writes(self, tmp_path: Path) -> None:
        """A reader in another process sees every batch whole and counts only growing."""
        url = f"sqlite:///{tmp_path}/a.db"
        store = open_store(url)
        store.upsert_findings([finding(port=p) for p in range(KEYS)])
        reader = subprocess.Popen(
            [sys.executable, "-c", _READER, url, str(KEYS * (BATCHES + 1))],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == "ready"
        _write_batches(store)
        out, _ = reader.communicate(timeout=60)
        store.close()
        result = json.loads(out)
        assert (result["torn"], result["monotonic"], result["last"]) == (0, True, KEYS * (BATCHES + 1))
        assert result["reads"] > 1

    def test_open_write_transaction_does_not_block_reader_process(self, tmp_path: Path) -> None:
        """While a writer holds an uncommitted transaction, another process opens and reads committed data."""
        url = f"sqlite:///{tmp_path}/a.db"
        with open_store(url) as store:
            store.upsert_findings([finding(count=7)])
        with closing(sqlite3.connect(tmp_path / "a.db", isolation_level=None)) as writer:
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("UPDATE findings SET count = 999")
            out = subprocess.run(
                [sys.executable, "-c", _COUNT_FIRST, url],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            writer.execute("ROLLBACK")
        assert out.stdout.strip() == "7"
