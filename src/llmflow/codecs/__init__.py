"""Provider codecs: a provider-neutral view of LLM requests, responses and streams.

A codec turns a provider request body into an :class:`AnnotatedLlmRequest`
(``decode``) and writes an edited annotation back into the provider shape
(``encode``), turns a provider response into an :class:`AnnotatedLlmResponse`
(``decode_response``), and folds the provider's stream into the response the
non-streaming API would have returned (``stream_accumulator``).

Contract of the built-in codecs:

* ``encode(decode(r), r) == r`` for every valid request ``r``; an edit changes
  only what it touched, everything else is kept verbatim from the original;
* ``annotate_request(r) == decode(r).model_dump(mode="json", exclude_none=True)``
  and ``annotate_response(x) == decode_response(x).model_dump(mode="json",
  exclude_none=True)``; the ``annotate_*`` forms skip pydantic and are the ones
  the pipeline records;
* a malformed payload raises :class:`CodecError` whose ``field`` is the dotted
  path of the offending field; codecs never raise ``KeyError``/``TypeError`` on
  provider data and never mutate their inputs.
"""

from llmflow._errors import CodecError

from ._annotated import (
    AnnotatedLlmRequest,
    AnnotatedLlmResponse,
    AnnotatedMessage,
    ContentPart,
    FinishReason,
    ImagePart,
    OpaquePart,
    ReasoningPart,
    RefusalPart,
    Role,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolDefinition,
    ToolResultContentPart,
    ToolResultPart,
    Usage,
)
from ._anthropic import AnthropicMessagesCodec, AnthropicStreamAccumulator
from ._base import RequestCodec, ResponseCodec, StreamAccumulator
from ._openai_chat import OpenAIChatCodec, OpenAIChatStreamAccumulator
from ._openai_responses import OpenAIResponsesCodec, OpenAIResponsesStreamAccumulator

__all__ = [
    "AnnotatedLlmRequest",
    "AnnotatedLlmResponse",
    "AnnotatedMessage",
    "AnthropicMessagesCodec",
    "AnthropicStreamAccumulator",
    "CodecError",
    "ContentPart",
    "FinishReason",
    "ImagePart",
    "OpaquePart",
    "OpenAIChatCodec",
    "OpenAIChatStreamAccumulator",
    "OpenAIResponsesCodec",
    "OpenAIResponsesStreamAccumulator",
    "ReasoningPart",
    "RefusalPart",
    "RequestCodec",
    "ResponseCodec",
    "Role",
    "StreamAccumulator",
    "TextPart",
    "ToolCallPart",
    "ToolChoice",
    "ToolDefinition",
    "ToolResultContentPart",
    "ToolResultPart",
    "Usage",
]
