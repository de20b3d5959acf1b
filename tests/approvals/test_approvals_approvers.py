"""The approvers file (engine.approvals.approvers): who may answer approvals, known by token digests;
a file that cannot be used is refused with a message naming the file and the entry or line."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from engine.approvals.approvers import DIGEST_PREFIX, Approvers, ApproversError, new_token, token_digest

ALICE_TOKEN = "alice-secret-token"
BOB_TOKEN = "bob-secret-token"
GOOD_DIGEST = "sha256:" + "0" * 64


def _write(tmp_path: Path, text: str, name: str = "approvers.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _refused(path: Path) -> str:
    with pytest.raises(ApproversError) as refused:
        Approvers.load(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ")  # every message names the file first
    return message


def test_token_digest_is_the_prefixed_sha256_of_the_token() -> None:
    digest = token_digest(ALICE_TOKEN)
    assert digest == DIGEST_PREFIX + hashlib.sha256(ALICE_TOKEN.encode()).hexdigest()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert token_digest(ALICE_TOKEN) == digest and token_digest(BOB_TOKEN) != digest
    assert token_digest("é") == DIGEST_PREFIX + hashlib.sha256("é".encode()).hexdigest()  # UTF-8


def test_new_tokens_are_random_url_safe_and_long() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # 32 random bytes, base64url


def test_a_valid_file_identifies_each_approver_by_token(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "# who may answer approvals\n"
        "[approvers]\n"
        f'alice = "{token_digest(ALICE_TOKEN)}"\n'
        f"'bob@example.com' = '{token_digest(BOB_TOKEN)}'  # quoted key\n"
        f'"carol.o+ops_1-x" = "{token_digest("carol")}"\n',
    )
    approvers = Approvers.load(path)
    assert approvers.by_digest == {
        token_digest(ALICE_TOKEN): "alice",
        token_digest(BOB_TOKEN): "bob@example.com",
        token_digest("carol"): "carol.o+ops_1-x",
    }
    assert approvers.identify(ALICE_TOKEN) == "alice"
    assert approvers.identify(BOB_TOKEN) == "bob@example.com"
    assert approvers.identify("carol") == "carol.o+ops_1-x"


@pytest.mark.parametrize(
    "token",
    ["", "alice", ALICE_TOKEN + " ", ALICE_TOKEN.upper(), token_digest(ALICE_TOKEN), GOOD_DIGEST],
)
def test_anything_but_the_token_itself_identifies_nobody(tmp_path: Path, token: str) -> None:
    approvers = Approvers.load(_write(tmp_path, f'[approvers]\nalice = "{token_digest(ALICE_TOKEN)}"\n'))
    assert approvers.identify(token) is None


def test_a_token_made_with_new_token_is_recognised(tmp_path: Path) -> None:
    token = new_token()
    approvers = Approvers.load(_write(tmp_path, f'[approvers]\ndana = "{token_digest(token)}"\n'))
    assert approvers.identify(token) == "dana"
    assert token not in (tmp_path / "approvers.toml").read_text()  # the file holds only the digest


def test_an_empty_approvers_table_lets_nobody_in(tmp_path: Path) -> None:
    approvers = Approvers.load(_write(tmp_path, "[approvers]\n"))
    assert approvers.by_digest == {} and approvers.identify(ALICE_TOKEN) is None


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    message = _refused(tmp_path / "nowhere.toml")
    assert "cannot read the approvers file: No such file or directory" in message


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "approvers.toml").mkdir()
    assert "cannot read the approvers file" in _refused(tmp_path / "approvers.toml")


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "approvers.toml"
    path.write_bytes(b'[approvers]\nalice = "\xff"\n')
    assert "not valid TOML" in _refused(path)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[approvers]\nalice\n", 2),  # a key without a value
        (f'[approvers]\nalice = "{GOOD_DIGEST}"\nbob = sha256:abc\n', 3),  # an unquoted value
        (f'[approvers]\nalice = "{GOOD_DIGEST}"\nalice = "{token_digest("x")}"\n', 3),  # a repeated key
        ("[approvers\n", 1),
    ],
)
def test_malformed_toml_is_refused_naming_the_line(tmp_path: Path, text: str, line: int) -> None:
    message = _refused(_write(tmp_path, text))
    assert "not valid TOML" in message
    assert f"line {line}," in message


@pytest.mark.parametrize(
    "text",
    [
        "",  # nothing at all
        f'alice = "{GOOD_DIGEST}"\n',  # no table
        f'[approver]\nalice = "{GOOD_DIGEST}"\n',  # a misspelt table
        f'approvers = "{GOOD_DIGEST}"\n',  # not a table
        f'[approvers]\nalice = "{GOOD_DIGEST}"\n[extra]\nx = 1\n',  # something else beside it
        f'title = "x"\n[approvers]\nalice = "{GOOD_DIGEST}"\n',
    ],
)
def test_anything_but_one_approvers_table_is_refused(tmp_path: Path, text: str) -> None:
    assert 'expected one [approvers] table of name = "sha256:..." lines' in _refused(_write(tmp_path, text))


@pytest.mark.parametrize(
    "value",
    [
        '"sha256:00"',  # too short
        '"' + "0" * 64 + '"',  # no prefix
        '"sha256:' + "A" * 64 + '"',  # uppercase hex
        '"sha256:' + "0" * 65 + '"',  # too long
        '"SHA256:' + "0" * 64 + '"',
        '"sha512:' + "0" * 64 + '"',
        '" sha256:' + "0" * 64 + '"',
        '"sha256:' + "g" * 64 + '"',
        "42",  # not a string
        "true",
        f'["{GOOD_DIGEST}"]',
        f'{{ digest = "{GOOD_DIGEST}" }}',
    ],
)
def test_a_bad_digest_is_refused_naming_its_approver(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, f'[approvers]\nalice = "{token_digest(ALICE_TOKEN)}"\nbob = {value}\n')
    message = _refused(path)
    assert 'approver bob: expected "sha256:" and 64 lowercase hex digits' in message
    assert "palisade approvals token NAME" in message  # and says how to make one


def test_a_nested_table_is_refused_naming_its_approver(tmp_path: Path) -> None:
    path = _write(tmp_path, f'[approvers]\n[approvers.erin]\ndigest = "{GOOD_DIGEST}"\n')
    assert "approver erin: expected" in _refused(path)


@pytest.mark.parametrize(
    "name",
    ["al ice", ".alice", "-alice", "alice!", "al/ice", "a" * 129, "ålice", ""],
)
def test_a_bad_name_is_refused_naming_it(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, f'[approvers]\n"{name}" = "{GOOD_DIGEST}"\n')
    message = _refused(path)
    assert f"approver {name!r}: a name is letters, digits and ._@+- (at most 128)" in message


def test_the_longest_name_is_accepted(tmp_path: Path) -> None:
    name = "a" * 128
    approvers = Approvers.load(_write(tmp_path, f'[approvers]\n{name} = "{GOOD_DIGEST}"\n'))
    assert approvers.by_digest == {GOOD_DIGEST: name}


def test_two_approvers_with_one_token_are_refused_naming_both(tmp_path: Path) -> None:
    shared = token_digest("shared")
    path = _write(tmp_path, f'[approvers]\nalice = "{shared}"\nbob = "{GOOD_DIGEST}"\ncarol = "{shared}"\n')
    assert "carol and alice have the same token" in _refused(path)
