"""A real audit log, random corruptions of it (JSON, for the corpus), and what `audit verify` must answer."""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit_helpers import make_log, verify
from hypothesis import strategies as st

from engine.audit import AuditPaths, Retention
from engine.audit.errors import AuditError
from engine.audit.retention import prune
from engine.audit.store import Store
from engine.cli.main import main

Op = dict[str, Any]
# Every table and column that verification reads, by the key that finds a row.
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "meta": (("key",), ("key", "value")),
    "head": (("id",), ("size", "last_hash", "frontier", "checkpoint_size")),
    "records": (("seq",), ("seq", "decision_id", "time", "outcome", "ruleset", "principal", "body", "hash")),
    "record_rules": (("rule", "seq"), ("rule", "seq")),
    "checkpoints": (("size",), ("size", "statement", "signature", "frontier")),
    "anchor": (("id",), ("size", "head", "frontier")),
}
# A copy of a row needs a new key (and records a new decision id); head and anchor hold one row only.
COPIES = {
    "meta": {"key": "key || '+'"},
    "records": {"seq": "?", "decision_id": "decision_id || '+'"},
    "record_rules": {"seq": "?"},
    "checkpoints": {"size": "?"},
}
FILE_OPS = frozenset({"truncate", "scribble", "key"})
READ = {"meta": "WHERE key = 'log_id'"}  # the rows verification reads, where not all of them


def make_pristine(data_dir: Path) -> Path:
    """30 records, checkpoints every 10, pruned at 10 (every table has rows), all in the database file."""
    make_log(data_dir, 30, checkpoint_every_records=10)
    database = AuditPaths.of(data_dir).database
    store = Store.open_writer(database, full_sync=True)
    try:
        assert prune(store, Retention(max_records=15), datetime.now(UTC)).start_after == 10
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(database)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return data_dir


# strategies

_cells = st.sampled_from([(table, column) for table, (_, columns) in TABLES.items() for column in columns])
_deep_json = st.integers(1, 200_000).map(lambda n: {"nested": n})  # JSON arrays n deep
_values = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    _deep_json,
    st.binary(max_size=200).map(lambda b: {"blob": b.hex()}),
    st.binary(max_size=40).map(lambda b: {"text_bytes": b.hex()}),
)
_row, _at, _byte = st.integers(0, 40), st.integers(0, 10_000), st.integers(1, 255)


def _cell_op(name: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Op]:
    return st.builds(
        lambda cell, extra: {"op": name, "table": cell[0], "column": cell[1], **extra},
        _cells,
        st.fixed_dictionaries(fields),
    )


def _row_op(name: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Op]:
    return st.fixed_dictionaries({"op": st.just(name), "table": st.sampled_from(sorted(TABLES)), **fields})


row_ops = st.one_of(
    _cell_op("flip", row=_row, at=_at, xor=_byte),
    _cell_op("set", row=_row, value=_values),
    _cell_op("swap", row=_row, other=_row),
    _row_op("delete", row=_row),
    _row_op("duplicate", row=_row, key=st.integers(-2, 40)),
)
file_ops = st.one_of(
    st.fixed_dictionaries({"op": st.just("truncate"), "size": st.integers(0, 200_000)}),
    st.fixed_dictionaries(
        {
            "op": st.just("scribble"),
            "at": st.integers(0, 200_000),
            "data": st.binary(min_size=1, max_size=64).map(bytes.hex),
        }
    ),
    st.fixed_dictionaries({"op": st.just("key"), "at": _at, "xor": _byte}),
)
corruptions = st.one_of(
    st.lists(row_ops, min_size=1, max_size=3),
    st.builds(
        lambda rows, files: rows + files,
        st.lists(row_ops, max_size=2),
        st.lists(file_ops, min_size=1, max_size=2),
    ),
)


# applying a corruption


def corrupt(data_dir: Path, ops: list[Op]) -> bool:
    """Apply ``ops`` to the log in ``data_dir``; True if a value that verification reads changed."""
    paths = AuditPaths.of(data_dir)
    with contextlib.closing(sqlite3.connect(paths.database, isolation_level=None)) as conn:
        conn.text_factory = _text
        before = snapshot(conn)
        for op in ops:
            if op["op"] not in FILE_OPS:
                _in_savepoint(conn, op)
        changed = _differs(before, snapshot(conn))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for op in ops:
        if op["op"] in FILE_OPS:
            _damage_file(paths.public_key if op["op"] == "key" else paths.database, op)
    return changed


def snapshot(conn: sqlite3.Connection) -> list[list[tuple[Any, ...]]]:
    """What verification reads, in key order; a signature as the bytes it decodes to."""
    tables = []
    for table, (key, columns) in TABLES.items():
        rows = conn.execute(
            f"SELECT {', '.join(columns)} FROM {table} {READ.get(table, '')} ORDER BY {', '.join(key)}"
        )
        signature = columns.index("signature") if "signature" in columns else -1
        tables.append([tuple(_signature(v) if i == signature else v for i, v in enumerate(r)) for r in rows])
    return tables


def _differs(before: list[list[tuple[Any, ...]]], after: list[list[tuple[Any, ...]]]) -> bool:
    """Whether verification must see a difference. A checkpoint between the anchor's and the last one
    may go: every record it signed is signed by the last, so the log proves as much without it."""
    at = list(TABLES).index("checkpoints")
    sizes = [row[0] for row in before[at]]
    ends = (min(sizes), max(sizes)) if sizes else ()
    kept = {row[0] for row in after[at]}
    needed = [row for row in before[at] if row[0] in kept or row[0] in ends]
    return [*before[:at], needed, *before[at + 1 :]] != after


def _signature(value: object) -> object:
    """The signature's bytes: base64 may spell the same bytes more than one way (the unused bits)."""
    try:
        return base64.b64decode(value, validate=True) if isinstance(value, bytes | str) else value
    except (binascii.Error, ValueError):
        return value


def _in_savepoint(conn: sqlite3.Connection, op: Op) -> None:
    """One row operation; one that breaks a constraint (NOT NULL, a duplicate key) changes nothing."""
    conn.execute("SAVEPOINT op")
    try:
        ROW_OPS[op["op"]](conn, op)
    except sqlite3.DatabaseError:  # a constraint, or a key that must be an integer
        conn.execute("ROLLBACK TO op")
    conn.execute("RELEASE op")


def _keys(conn: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    key = ", ".join(TABLES[table][0])
    return list(conn.execute(f"SELECT {key} FROM {table} ORDER BY {key}"))


def _text(data: bytes) -> str | bytes:
    """Text as str, or as bytes where it is not UTF-8 (as the store reads it)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _where(table: str, key: tuple[Any, ...]) -> str:
    """The row with ``key`` (NULL too); bytes match a blob, or text that is not UTF-8, of those bytes."""
    columns = TABLES[table][0]
    return " AND ".join(
        f"CAST({c} AS BLOB) IS ?" if isinstance(v, bytes) else f"{c} IS ?"
        for c, v in zip(columns, key, strict=True)
    )


def _pick(conn: sqlite3.Connection, table: str, index: int) -> tuple[Any, ...] | None:
    keys = _keys(conn, table)
    return keys[index % len(keys)] if keys else None


def _get(conn: sqlite3.Connection, op: Op, key: tuple[Any, ...]) -> Any:
    sql = f"SELECT {op['column']} FROM {op['table']} WHERE {_where(op['table'], key)}"
    return conn.execute(sql, key).fetchone()[0]


def _put(conn: sqlite3.Connection, op: Op, key: tuple[Any, ...], value: Any) -> None:
    """Store ``value``; bytes in a text column are stored as text that is not UTF-8."""
    text = isinstance(value, bytes) and _is_text(conn, op, key)
    cell = "CAST(? AS TEXT)" if text else "?"
    conn.execute(
        f"UPDATE {op['table']} SET {op['column']} = {cell} WHERE {_where(op['table'], key)}", (value, *key)
    )


def _is_text(conn: sqlite3.Connection, op: Op, key: tuple[Any, ...]) -> bool:
    sql = f"SELECT typeof({op['column']}) FROM {op['table']} WHERE {_where(op['table'], key)}"
    return bool(conn.execute(sql, key).fetchone()[0] == "text")


def _flip(conn: sqlite3.Connection, op: Op) -> None:
    key = _pick(conn, op["table"], op["row"])
    if key is None:
        return
    value = _get(conn, op, key)
    if isinstance(value, int):
        _put(conn, op, key, value ^ (1 << (op["at"] % 62)))
    elif isinstance(value, str | bytes):
        data = bytearray((value.encode() if isinstance(value, str) else value) or b"\0")
        data[op["at"] % len(data)] ^= op["xor"]
        _put(conn, op, key, bytes(data))


def _set(conn: sqlite3.Connection, op: Op) -> None:
    key = _pick(conn, op["table"], op["row"])
    if key is None:
        return
    value = op["value"]
    if isinstance(value, dict) and "nested" in value:
        value = "[" * value["nested"] + "]" * value["nested"]
    if isinstance(value, dict):
        raw = bytes.fromhex(next(iter(value.values())))
        cell = "CAST(? AS TEXT)" if "text_bytes" in value else "?"
        sql = f"UPDATE {op['table']} SET {op['column']} = {cell} WHERE {_where(op['table'], key)}"
        conn.execute(sql, (raw, *key))
        return
    conn.execute(
        f"UPDATE {op['table']} SET {op['column']} = ? WHERE {_where(op['table'], key)}", (value, *key)
    )


def _swap(conn: sqlite3.Connection, op: Op) -> None:
    first, second = _pick(conn, op["table"], op["row"]), _pick(conn, op["table"], op["other"])
    if first is None or second is None or first == second:
        return
    a, b = _get(conn, op, first), _get(conn, op, second)
    placeholder = -(2**62) if isinstance(a, int) else "\0swap"
    _put(conn, op, first, placeholder)  # a unique column may not hold the same value twice
    _put(conn, op, second, a)
    _put(conn, op, first, b)


def _delete(conn: sqlite3.Connection, op: Op) -> None:
    key = _pick(conn, op["table"], op["row"])
    if key is not None:
        conn.execute(f"DELETE FROM {op['table']} WHERE {_where(op['table'], key)}", key)


def _duplicate(conn: sqlite3.Connection, op: Op) -> None:
    table = op["table"]
    key = _pick(conn, table, op["row"])
    if key is None or table not in COPIES:
        return
    changes, columns = COPIES[table], TABLES[table][1]
    selected = ", ".join(changes.get(column, column) for column in columns)
    params = (op["key"],) * sum(v == "?" for v in changes.values())
    into = f"INSERT INTO {table} ({', '.join(columns)})"
    conn.execute(f"{into} SELECT {selected} FROM {table} WHERE {_where(table, key)}", (*params, *key))


ROW_OPS: dict[str, Callable[[sqlite3.Connection, Op], None]] = {
    "flip": _flip,
    "set": _set,
    "swap": _swap,
    "delete": _delete,
    "duplicate": _duplicate,
}


def _damage_file(path: Path, op: Op) -> None:
    data = bytearray(path.read_bytes())
    if op["op"] == "truncate":
        del data[op["size"] % (len(data) + 1) :]
    elif op["op"] == "scribble":
        at = op["at"] % (len(data) + 1)
        patch = bytes.fromhex(op["data"])
        data[at : at + len(patch)] = patch
    elif data:
        data[op["at"] % len(data)] ^= op["xor"]
    path.write_bytes(bytes(data))


class EchoedNewline(AssertionError):
    """The verifier's one-line answer holds a newline, from a stored value it quoted."""


# the oracle


def copy_log(pristine: Path, into: Path) -> Path:
    shutil.copytree(pristine, into)
    return into


def assert_verify_answers(data_dir: Path, changed: bool) -> int:
    """verify_log and `palisade audit verify` agree, with a documented exit status and message; a change
    to what verification reads is never called whole. Returns the exit status."""
    try:
        report = verify(data_dir)
    except AuditError:  # StoreError: a database SQLite cannot read
        expected = 2
    else:
        expected = 0 if report.ok else 1
    status, out, err = run_cli("audit", "verify", "--data-dir", str(data_dir))
    assert status == expected, (status, expected, out, err)
    if status == 0:
        assert out.startswith("audit log whole: ") and not err, (out, err)
    else:
        assert err.startswith("audit log BROKEN at " if status == 1 else "palisade audit: "), err
    assert not (changed and status == 0), f"a change went unnoticed: {out}"
    if (out + err).count("\n") != 1:
        raise EchoedNewline(out + err)
    return status


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()
