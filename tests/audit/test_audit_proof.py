"""Third parties: whole-log verification and inclusion proofs with nothing but a copy and the public key."""

from __future__ import annotations

import base64
import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import fill, make_log, open_log, tmpfs, verify
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.audit import AuditPaths
from engine.audit.keys import Verifier, load_verifier
from engine.audit.proof import ProofError, prove, verify_proof
from engine.audit.store import Store
from engine.audit.verify import FORGED


def _handover(data_dir: Path, to: Path) -> tuple[Path, Path]:
    """What a third party receives: a copy of the database file and the public key, nothing else."""
    to.mkdir()
    paths = AuditPaths.of(data_dir)
    shutil.copy(paths.database, to / "evidence.db")
    shutil.copy(paths.public_key, to / "palisade.pub")
    return to / "evidence.db", to / "palisade.pub"


def _proof(data_dir: Path, decision_id: str) -> dict[str, Any]:
    store = Store.open_reader(AuditPaths.of(data_dir).database)
    try:
        return prove(store, decision_id)
    finally:
        store.close()


def test_a_copy_verifies_with_only_the_public_key(tmp_path: Path) -> None:
    make_log(tmp_path / "data", 40, checkpoint_every_records=16)
    db, public_key = _handover(tmp_path / "data", tmp_path / "auditor")
    report = verify(tmp_path / "nowhere", public_key=public_key, db=db)
    assert report.ok and report.records == 40 and report.signed == 40


def test_a_copy_on_read_only_media_verifies(tmp_path: Path) -> None:
    make_log(tmp_path / "data", 9, checkpoint_every_records=4)
    paths = AuditPaths.of(tmp_path / "data")

    def burn(mount: Path) -> None:
        shutil.copy(paths.database, mount / "evidence.db")
        shutil.copy(paths.public_key, mount / "palisade.pub")

    with tmpfs(tmp_path / "dvd", read_only_after=burn) as dvd:
        report = verify(tmp_path / "nowhere", public_key=dvd / "palisade.pub", db=dvd / "evidence.db")
    assert report.ok and report.records == 9


def test_another_public_key_rejects_the_checkpoints(tmp_path: Path) -> None:
    make_log(tmp_path / "data", 5)
    db, public_key = _handover(tmp_path / "data", tmp_path / "auditor")
    public_key.write_text(Verifier(Ed25519PrivateKey.generate().public_key()).pem())
    report = verify(tmp_path / "nowhere", public_key=public_key, db=db)
    assert report.problem is not None and report.problem.kind == FORGED


def test_an_inclusion_proof_verifies_offline(tmp_path: Path) -> None:
    ids = make_log(tmp_path, 37, checkpoint_every_records=10)
    verifier = load_verifier(AuditPaths.of(tmp_path).public_key)
    for seq in (1, 10, 11, 22, 37):
        proof = json.loads(json.dumps(_proof(tmp_path, ids[seq - 1])))  # as it travels: JSON text
        proven = verify_proof(proof, verifier)
        assert (proven.seq, proven.decision_id, proven.size) == (seq, ids[seq - 1], 37)


def _tamper(proof: dict[str, Any], change: str) -> dict[str, Any]:
    bad = copy.deepcopy(proof)
    if change == "record":
        bad["record"]["outcome"] = "allow"
    elif change == "path":
        node = bad["audit_path"][0]
        bad["audit_path"][0] = ("0" if node[0] != "0" else "1") + node[1:]
    elif change == "signature":
        bad["checkpoint"]["signature"] = base64.b64encode(bytes(64)).decode()
    elif change == "size":
        bad["tree_size"] += 1
    elif change == "index":
        bad["leaf_index"] += 1
    elif change == "shape":
        del bad["audit_path"]
    return bad


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("record", "altered"),
        ("path", "does not lead to the signed root"),
        ("signature", "signature"),
        ("size", "tree size"),
        ("index", "leaf index"),
        ("shape", "malformed proof"),
    ],
)
def test_a_tampered_proof_fails(tmp_path: Path, change: str, message: str) -> None:
    ids = make_log(tmp_path, 12, checkpoint_every_records=5)
    proof = _proof(tmp_path, ids[6])
    verifier = load_verifier(AuditPaths.of(tmp_path).public_key)
    with pytest.raises(ProofError, match=message):
        verify_proof(_tamper(proof, change), verifier)


def test_a_record_after_the_last_checkpoint_has_no_proof_yet(tmp_path: Path) -> None:
    with open_log(tmp_path, checkpoint_every_records=1000) as log:
        (decision_id,) = fill(log, 1)
        with pytest.raises(ProofError, match="not covered by a signed checkpoint yet"):
            _proof(tmp_path, decision_id)
    assert _proof(tmp_path, decision_id)["tree_size"] == 1  # the checkpoint at close covers it


def test_an_unknown_decision_has_no_proof(tmp_path: Path) -> None:
    make_log(tmp_path, 1)
    with pytest.raises(ProofError, match="no record with decision id nope"):
        _proof(tmp_path, "nope")
