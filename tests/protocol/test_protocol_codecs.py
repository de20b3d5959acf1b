"""The proto <-> domain converters, decision ids and the service config, without a server."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dsl.types import Stage
from engine.config import ConfigError, Limits, ServeConfig, load_config
from engine.protocol.request_codec import InvalidRequest, bounded, request_from_proto, request_to_proto
from engine.runtime.ids import new_id, uuid7
from engine.runtime.request import Message, Principal, Request, ToolCall

LIMITS = Limits()


def round_trip(request: Request) -> Request:
    return request_from_proto(request_to_proto("rs", request), LIMITS)


def test_a_full_request_survives_the_round_trip() -> None:
    request = Request(
        stage=Stage.TOOL_CALL,
        messages=(Message("user", "hi"), Message("assistant", "hello")),
        text="text wins",
        tool=ToolCall("fs.read", {"path": "/x", "n": 3, "f": 0.5, "ok": True, "no": None, "l": [1]}, "mcp"),
        principal=Principal("u1", "acme", ("dev", "ops"), {"team": "red"}),
        metadata={"channel": "web"},
        request_id="r1",
        approval_id="a1",
    )
    assert round_trip(request) == request


def test_whole_numbers_come_back_as_ints_so_args_text_matches_the_callers_json() -> None:
    request = Request(stage=Stage.TOOL_CALL, tool=ToolCall("t", {"n": 3, "big": 2**60, "x": -1.0}))
    decoded = round_trip(request)
    assert decoded.tool is not None
    assert decoded.tool.arguments == {"n": 3, "big": float(2**60), "x": -1}
    assert decoded.tool_args_text == '{"big": 1.152921504606847e+18, "n": 3, "x": -1}'


def test_an_empty_principal_and_no_tool_stay_absent() -> None:
    message = request_to_proto("rs", Request(stage=Stage.INPUT, text="hi"))
    assert not message.HasField("tool") and not message.HasField("principal")
    assert round_trip(Request(stage=Stage.INPUT, text="hi")) == Request(stage=Stage.INPUT, text="hi")


ALICE = Principal(id="alice", tenant="acme", roles=("dev",))


@pytest.mark.parametrize(
    ("ruleset", "request_"),
    [
        ("r", Request(Stage.INPUT, messages=(Message("user", "hi"), Message("system", "be brief")))),
        ("r", Request(Stage.OUTPUT, text="an answer", principal=ALICE, metadata={"channel": "web"})),
        ("r", Request(Stage.TOOL_CALL, tool=ToolCall("search", {"q": "x", "n": 2.0, "deep": [{"a": 1}]}))),
        ("r", Request(Stage.INPUT, messages=(Message("user", "x" * 100),) * 11)),  # over both limits
        ("r", Request(Stage.INPUT, messages=(Message("", "no role"),))),
        ("r", Request(Stage.OUTPUT, text="x" * 1001)),
        ("r", Request(Stage.OUTPUT, text="lone \ud800 surrogate")),
        ("r", Request(Stage.OUTPUT)),  # no content
        ("", Request(Stage.OUTPUT, text="no ruleset")),
        ("r", Request(Stage.INPUT, messages=(Message("user", "hi"),), metadata={"k": 3})),  # type: ignore[dict-item]
    ],
)
def test_bounded_is_the_round_trip_without_protobuf(ruleset: str, request_: Request) -> None:
    """What an in-process front door gets is what the same request over gRPC would give."""
    limits = Limits(max_messages=10, max_text_chars=1000)

    def outcome(make: Callable[[], Request]) -> Request | str:
        try:
            return make()
        except InvalidRequest as exc:
            return str(exc)

    expected = outcome(lambda: request_from_proto(request_to_proto(ruleset, request_), limits))
    assert outcome(lambda: bounded(ruleset, request_, limits)) == expected


def test_depth_counts_lists_and_objects() -> None:
    limits = Limits(max_argument_depth=2)
    ok = request_to_proto("rs", Request(stage=Stage.TOOL_CALL, tool=ToolCall("t", {"a": {"b": 1}})))
    deep = request_to_proto("rs", Request(stage=Stage.TOOL_CALL, tool=ToolCall("t", {"a": [{"b": 1}]})))
    assert request_from_proto(ok, limits).tool is not None
    with pytest.raises(InvalidRequest, match="max_argument_depth"):
        request_from_proto(deep, limits)


def test_uuid7_has_version_variant_and_time_order() -> None:
    first = uuid7()
    time.sleep(0.002)
    second = uuid.UUID(new_id())
    assert (first.version, second.version) == (7, 7)
    assert first.variant == uuid.RFC_4122
    assert first.int >> 80 < second.int >> 80
    assert abs((first.int >> 80) - time.time() * 1000) < 60_000


def test_uuid7_random_bits_never_repeat_across_threads_and_refills() -> None:
    # the random bytes come from a shared pool refilled from the OS: no two ids may share a chunk
    def draw(_: int) -> list[int]:
        return [uuid7().int & ((1 << 76) - 1) for _ in range(3000)]

    with ThreadPoolExecutor(8) as pool:
        drawn = [bits for batch in pool.map(draw, range(8)) for bits in batch]
    assert len(set(drawn)) == len(drawn) == 24_000


def test_a_forked_child_draws_other_random_bits_than_its_parent() -> None:
    uuid7()  # the pool holds bytes now, which a child must not reuse
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next id's random bits, and leave at once
        os.write(writer, uuid7().bytes)
        os._exit(0)
    os.close(writer)
    child = uuid.UUID(bytes=os.read(reader, 16))
    os.waitpid(pid, 0)
    os.close(reader)
    assert child.int & ((1 << 62) - 1) != uuid7().int & ((1 << 62) - 1)


def test_every_setting_has_a_default() -> None:
    config = load_config()
    assert config == ServeConfig()
    assert (config.rulesets, config.listen, config.data_dir, config.workers) == (
        "rulesets",
        "127.0.0.1:50051",
        "data",
        1,
    )


def test_the_file_sets_values_relative_to_itself_and_flags_win(tmp_path: Path) -> None:
    path = tmp_path / "palisade.toml"
    path.write_text('rulesets = "policies"\nworkers = 3\n[limits]\nmax_messages = 7\n', encoding="utf-8")
    config = load_config(str(path), {"workers": 2, "listen": None})
    assert config.rulesets == str(tmp_path / "policies")
    assert (config.workers, config.listen, config.limits.max_messages) == (2, "127.0.0.1:50051", 7)


def test_every_file_a_config_file_names_is_relative_to_it(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "palisade.toml"
    path.parent.mkdir()
    path.write_text(
        '[approvals]\napprovers_file = "approvers.toml"\n'
        '[tls]\ncert_file = "tls/server.pem"\nkey_file = "/abs/server.key"\n'
        '[audit]\nhmac_key_path = "keys/hmac.key"\n',
        encoding="utf-8",
    )
    config = load_config(str(path))
    assert config.approvals.approvers_file == str(tmp_path / "etc" / "approvers.toml")
    assert (config.tls.cert_file, config.tls.key_file) == (
        str(tmp_path / "etc/tls/server.pem"),
        "/abs/server.key",
    )
    assert config.audit.hmac_key_path == str(tmp_path / "etc" / "keys" / "hmac.key")
    assert (config.tls.client_ca_file, config.audit.signing_key_path) == ("", "")  # unset stays unset


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("workerz = 2\n", "workerz"),
        ("[limits]\nmax_text_chars = 0\n", "limits.max_text_chars"),
        ("workers = [\n", "invalid TOML"),
    ],
)
def test_a_bad_config_names_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=named.replace("[", r"\[")):
        load_config(str(path))
