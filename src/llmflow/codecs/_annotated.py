"""The provider-neutral view of LLM requests and responses.

These pydantic models are what codecs decode provider payloads into and what
request intercepts may edit. Their JSON form (``model_dump(mode="json",
exclude_none=True)``) is what llmflow records as ``annotated_request`` /
``annotated_response`` in ``category_profile``; the JSON Schemas in
``schemas/`` are generated from them.

Conventions shared by every model:

* every optional field defaults to ``None`` and is left out of the JSON form
  when unset, so the annotation only says what the provider payload said;
* ``extras`` holds provider fields of that element which the model does not
  cover, verbatim (``None`` when there are none);
* unknown content (documents, audio, hosted-tool items, ...) is carried as an
  :class:`OpaquePart` holding the provider object unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AnnotatedLlmRequest",
    "AnnotatedLlmResponse",
    "AnnotatedMessage",
    "ContentPart",
    "FinishReason",
    "ImagePart",
    "OpaquePart",
    "ReasoningPart",
    "RefusalPart",
    "Role",
    "TextPart",
    "ToolCallPart",
    "ToolChoice",
    "ToolDefinition",
    "ToolResultContentPart",
    "ToolResultPart",
    "Usage",
]

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
"""Normalized message role. OpenAI ``developer`` is ``system``; see ``provider_role``."""

FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter", "refusal"]
"""Why generation ended, normalized across providers (the provider value is kept too)."""

_Extras: TypeAlias = dict[str, Any] | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(_Model):
    """Plain text."""

    type: Literal["text"] = "text"
    text: str
    extras: _Extras = None


class ImagePart(_Model):
    """An image given by URL, by inline base64 ``data`` + ``media_type``, or by ``file_id``.

    ``data:<media type>;base64,...`` URLs are split into ``media_type`` and ``data``.
    """

    type: Literal["image"] = "image"
    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    file_id: str | None = None
    detail: str | None = None
    extras: _Extras = None


class ToolCallPart(_Model):
    """A call of a tool by the model.

    ``arguments`` is the parsed JSON of the provider's argument string (or the
    provider's argument object). When the string is not valid JSON it is kept in
    ``raw_arguments`` and ``arguments`` is unset.
    """

    type: Literal["tool_call"] = "tool_call"
    id: str | None = None
    name: str
    arguments: Any = None
    raw_arguments: str | None = None
    extras: _Extras = None


class OpaquePart(_Model):
    """Provider content the annotated model does not cover, kept verbatim in ``value``."""

    type: Literal["opaque"] = "opaque"
    value: dict[str, Any]


ToolResultContentPart: TypeAlias = Annotated[
    TextPart | ImagePart | OpaquePart, Field(discriminator="type")
]


class ToolResultPart(_Model):
    """The result of a tool call, sent back to the model.

    ``content`` is a plain string or a list of parts, as the provider payload had it.
    """

    type: Literal["tool_result"] = "tool_result"
    tool_call_id: str
    content: str | list[ToolResultContentPart] | None = None
    is_error: bool | None = None
    extras: _Extras = None


class ReasoningPart(_Model):
    """Model reasoning (Anthropic ``thinking``, OpenAI reasoning summaries)."""

    type: Literal["reasoning"] = "reasoning"
    text: str | None = None
    extras: _Extras = None


class RefusalPart(_Model):
    """A refusal to answer, as reported by the provider."""

    type: Literal["refusal"] = "refusal"
    text: str
    extras: _Extras = None


ContentPart: TypeAlias = Annotated[
    TextPart | ImagePart | ToolCallPart | ToolResultPart | ReasoningPart | RefusalPart | OpaquePart,
    Field(discriminator="type"),
]


class AnnotatedMessage(_Model):
    """One message of a conversation.

    ``provider_role`` is the provider's spelling of the role when it differs from
    the normalized ``role`` (``"developer"`` for ``system``, ``"function"`` for the
    legacy OpenAI function role); encoders write it back only while it still
    means ``role``.
    """

    role: Role
    provider_role: str | None = None
    content: list[ContentPart] = Field(default_factory=list)
    extras: _Extras = None

    @property
    def text(self) -> str:
        """The concatenated text parts of the message."""
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


class ToolDefinition(_Model):
    """A tool the model may call.

    ``type`` is ``"function"`` for caller-defined function tools; any other value
    is the provider's type of a hosted/server tool whose settings are in ``extras``.
    """

    type: str = "function"
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    extras: _Extras = None


class ToolChoice(_Model):
    """Normalized tool choice: ``auto``, ``none``, ``required`` (any tool) or one named ``tool``."""

    type: Literal["auto", "none", "required", "tool"]
    name: str | None = None
    extras: _Extras = None


class AnnotatedLlmRequest(_Model):
    """The provider-neutral view of an LLM request.

    ``system`` holds the provider's top-level instructions (Anthropic ``system``,
    Responses ``instructions``); instructions sent as messages stay in
    ``messages`` with role ``system``. ``max_tokens`` is the output token limit
    whatever the provider calls it.

    ``extras`` holds the top-level body fields the model does not cover. When it is
    ``None``, encoding keeps those fields from the original request; when it is a
    dict it is authoritative (remove a key to drop that field).
    """

    model: str | None = None
    system: list[TextPart] | None = None
    messages: list[AnnotatedMessage] = Field(default_factory=list)
    tools: list[ToolDefinition] | None = None
    tool_choice: ToolChoice | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stream: bool | None = None
    extras: _Extras = None

    @property
    def system_text(self) -> str:
        """Every instruction: ``system`` parts then system messages, joined by blank lines."""
        texts = [part.text for part in self.system or ()]
        texts.extend(m.text for m in self.messages if m.role == "system")
        return "\n\n".join(texts)


class Usage(_Model):
    """Token usage.

    ``input_tokens`` counts every prompt token, cached ones included (for Anthropic
    it is ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``);
    ``cached_tokens`` is the part served from the prompt cache,
    ``cache_creation_tokens`` the part written to it, and ``reasoning_tokens`` the
    part of ``output_tokens`` spent on reasoning.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    cache_creation_tokens: int | None = None
    reasoning_tokens: int | None = None


class AnnotatedLlmResponse(_Model):
    """The provider-neutral view of an LLM response.

    ``messages`` are the output messages (one per choice for Chat Completions)
    without their tool calls, which are listed in ``tool_calls``.
    ``finish_reason`` is normalized; ``raw_finish_reason`` is the provider's value.
    """

    id: str | None = None
    model: str | None = None
    messages: list[AnnotatedMessage] = Field(default_factory=list)
    tool_calls: list[ToolCallPart] = Field(default_factory=list)
    finish_reason: FinishReason | None = None
    raw_finish_reason: str | None = None
    usage: Usage | None = None

    @property
    def text(self) -> str:
        """The concatenated text of every output message."""
        return "".join(m.text for m in self.messages)
