"""The OpenAI APIs the processor guards (chat completions, Responses): how each one is read and written."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.envoy import openai, responses
from engine.envoy.stream import ChatStream, Dialect


@dataclass(frozen=True, slots=True)
class Api:
    """One API: its request and answer read (as Checks see them), and the answers Palisade writes."""

    parse_request: Callable[[bytes, Sequence[str]], openai.Chat]  # raises BodyError
    parse_answer: Callable[[bytes], openai.Chat]  # a whole answer; raises BodyError
    reply: Callable[[str, str, str], bytes]  # (model, text, reply id): a whole answer with that text
    dialect: Callable[[], Dialect]  # a new reader and writer of one stream
    reply_prefix: str  # of the id of an answer Palisade writes (then the decision id)


CHAT = Api(
    openai.parse_request, openai.parse_completion, openai.reply_completion, ChatStream, "chatcmpl-palisade-"
)
RESPONSES = Api(
    responses.parse_request,
    responses.parse_response,
    responses.reply_response,
    responses.ResponsesStream,
    "resp_palisade_",
)
