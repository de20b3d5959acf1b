"""When the log cannot be written: AuditUnavailable (fail closed), unhealthy, then recovery, chain whole.

Two real ways to make writes fail: a file-size limit of zero on this process (RLIMIT_FSIZE: every
write is refused with EFBIG, as a full disk refuses it; works without privileges), and a small
tmpfs filled to the last byte (ENOSPC; needs the right to mount, and is skipped without it).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import database, fill, open_log, tmpfs, verify, wait_until
from faults import writes_refused

from engine.audit import AuditConfig, AuditError, AuditLog, AuditPaths, AuditUnavailable, Record
from engine.audit.record import Entry
from engine.audit.store import Store

RETRY = 0.02  # seconds between the writer's retries while it is unhealthy


@pytest.fixture()
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "tiny") as mount:
        yield mount


def _fill_disk(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def _seqs(data_dir: Path) -> list[int]:
    store = Store.open_reader(AuditPaths.of(data_dir).database)
    try:
        return [row.seq for row in store.records()]
    finally:
        store.close()


def test_refused_writes_fail_closed_report_unhealthy_and_recover(tmp_path: Path) -> None:
    changes: list[bool] = []
    log = AuditLog.open(
        tmp_path, AuditConfig(durability="sync", retry_every_seconds=RETRY), on_health=changes.append
    )
    fill(log, 3)
    with writes_refused():
        with pytest.raises(AuditUnavailable, match="could not be written"):
            fill(log, 1)
        assert not log.healthy
        with pytest.raises(AuditUnavailable, match="cannot be written"):
            fill(log, 1)  # refused at once while unhealthy: the server answers by its error policy
    wait_until(lambda: log.healthy, "the writer has recovered")
    fill(log, 2)
    log.close()
    assert changes == [False, True]
    assert _seqs(tmp_path) == [1, 2, 3, 4, 5]  # no gap, no fork: the failed records never got a seq
    assert verify(tmp_path).ok


def test_async_records_accepted_before_a_failure_are_written_after_recovery(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path, AuditConfig(durability="async", retry_every_seconds=RETRY))
    before = fill(log, 2)
    wait_until(lambda: log.pending == 0, "the first records are committed")
    with writes_refused():
        accepted = fill(log, 1)
        wait_until(lambda: not log.healthy, "the writer has failed")
        with pytest.raises(AuditUnavailable):
            fill(log, 1)
        assert log.pending == 1
    wait_until(lambda: log.healthy and log.pending == 0, "the kept record is written")
    log.close()
    store = Store.open_reader(AuditPaths.of(tmp_path).database)
    assert [row.decision_id for row in store.records()] == before + accepted
    store.close()
    assert verify(tmp_path).ok


def test_a_full_disk_fails_closed_and_recovers_when_space_returns(tiny_fs: Path) -> None:
    log = AuditLog.open(tiny_fs / "data", AuditConfig(durability="sync", retry_every_seconds=RETRY))
    fill(log, 3)
    _fill_disk(tiny_fs / "filler")
    written = 0  # a record may still fit in space the files already hold; the disk fills up soon after
    with pytest.raises(AuditUnavailable, match="full"):
        for _ in range(1000):
            fill(log, 1)
            written += 1
    assert not log.healthy
    (tiny_fs / "filler").unlink()
    wait_until(lambda: log.healthy, "the writer has recovered")
    fill(log, 2)
    log.close()
    report = verify(tiny_fs / "data")
    assert report.ok and report.records == 3 + written + 2


def test_an_unexpected_error_fails_its_batch_closed_and_the_writer_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_log(tmp_path, retry_every_seconds=0.05) as log:
        chain = log._writer._chain  # fault injection: the first transaction meets a bug, not a disk
        append, failures = chain.append, [RuntimeError("a bug")]

        def once_broken(store: Store, entries: Sequence[Entry]) -> tuple[list[Record | AuditError], Any]:
            if failures:
                raise failures.pop()
            return append(store, entries)

        monkeypatch.setattr(chain, "append", once_broken)
        with pytest.raises(AuditUnavailable, match="unexpected error"):
            fill(log, 1)
        wait_until(lambda: log.healthy, "the writer recovers after its retry")
        fill(log, 2)
    report = verify(tmp_path)
    assert report.ok and report.records == 2


def _announced(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "palisade.audit" and r.levelno >= logging.WARNING
    ]


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk under load: not a line per refused decision or per failed retry, but two, with counts."""
    log = AuditLog.open(tmp_path, AuditConfig(durability="sync", retry_every_seconds=RETRY))
    fill(log, 1)
    with writes_refused():
        for _ in range(50):
            with pytest.raises(AuditUnavailable):
                fill(log, 1)
        time.sleep(20 * RETRY)  # meanwhile the writer retries, and fails, about 20 times
    wait_until(lambda: log.healthy, "the writer has recovered")
    log.close()
    failing, writable = _announced(caplog)
    assert re.fullmatch(r"audit log cannot be written: .+ \(1 refused decision\(s\) so far\)", failing)
    assert re.fullmatch(r"audit log writable again after 50 refused decision\(s\) and \d+\.\d s", writable)


def test_a_nearly_full_disk_does_not_flap(tiny_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Room for a small write but not for a record: the writer must not report itself writable."""
    changes: list[bool] = []
    log = AuditLog.open(
        tiny_fs / "data", AuditConfig(durability="sync", retry_every_seconds=RETRY), on_health=changes.append
    )
    fill(log, 3)
    with database(tiny_fs / "data") as worker:  # another worker's connection: the WAL stays as it is
        worker.execute("SELECT size FROM head").fetchone()
        reserve = tiny_fs / "reserve"
        reserve.write_bytes(bytes(24 * 1024))
        _fill_disk(tiny_fs / "filler")
        reserve.unlink()  # 24 KiB free: a probe of a few bytes fits, a record's transaction does not
        deadline = time.monotonic() + 50 * RETRY
        while time.monotonic() < deadline:
            with pytest.raises(AuditUnavailable):
                fill(log, 1)
            time.sleep(RETRY / 4)
        assert changes == [False]
        (tiny_fs / "filler").unlink()
        wait_until(lambda: log.healthy, "the writer has recovered")
        fill(log, 1)
    log.close()
    assert changes == [False, True]
    assert len(_announced(caplog)) == 2
