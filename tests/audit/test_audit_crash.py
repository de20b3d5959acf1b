"""A process killed (SIGKILL) while appending under load: every acknowledged record survives; it verifies.

The process here is a bare AuditLog with eight appending threads; the same test against the real
server waits for the server to take an AuditLog (see docs/audit.md, "Wiring it into the server").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from audit_helpers import HERE, fill, open_log, verify

from engine.audit import AuditPaths
from engine.audit.store import Store

ROOT = HERE.parents[1]
ACKNOWLEDGED_BEFORE_KILL = 400
CHILD = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from audit_helpers import decide, open_log, request
    from engine.runtime.ids import new_id

    log = open_log(Path(sys.argv[1]), checkpoint_every_records=50)
    decision, req = decide(request())
    lock = threading.Lock()

    def work():
        while True:
            decision_id = new_id()
            log.append(decision, req, decision_id)  # sync: returns once the record is fsynced
            with lock:
                sys.stdout.write(decision_id + "\\n")
                sys.stdout.flush()

    for _ in range(8):
        threading.Thread(target=work, daemon=True).start()
    threading.Event().wait()
    """
)


def test_every_acknowledged_record_survives_sigkill(tmp_path: Path) -> None:
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "helpers"), str(ROOT)])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    acknowledged = [child.stdout.readline().strip() for _ in range(ACKNOWLEDGED_BEFORE_KILL)]
    child.send_signal(signal.SIGKILL)
    acknowledged += child.stdout.read().split()  # answered before the kill landed
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert all(acknowledged)

    store = Store.open_reader(AuditPaths.of(tmp_path).database)
    stored = {row.decision_id for row in store.records()}
    store.close()
    assert set(acknowledged) <= stored
    report = verify(tmp_path)
    assert report.ok, report.problem

    with open_log(tmp_path) as log:  # the next start continues the same chain
        fill(log, 5)
    after = verify(tmp_path)
    assert after.ok and after.records == len(stored) + 5
