"""``redact(...)``: PII and secrets out of every recorded payload, with one registration."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Literal

from llmflow import events, guardrails
from llmflow._event import Event
from llmflow._runtime import Runtime, get_runtime
from llmflow._scope import Span
from llmflow._types import Json, LlmRequest

__all__ = ["PRESETS", "Redaction", "Redactor", "luhn_valid", "mod97_valid", "redact"]

Strategy = Literal["mask", "hash", "remove"]
_STRATEGIES: Final = ("mask", "hash", "remove")


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check (payment card numbers)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def mod97_valid(iban: str) -> bool:
    """Whether an IBAN (spaces removed, upper case) passes the ISO 13616 mod-97 check."""
    rearranged = iban[4:] + iban[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _card(text: str) -> bool:
    digits = _digits(text)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _iban(text: str) -> bool:
    compact = text.replace(" ", "")
    return 15 <= len(compact) <= 34 and mod97_valid(compact)


def _ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _phone(text: str) -> bool:
    return 7 <= len(_digits(text)) <= 15


_OCTET: Final = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

# Order matters: the first alternative that matches at a position wins, and a
# match its validator rejects is left as it is (a Luhn-invalid 16-digit number
# is not then taken for a phone number).
PRESETS: Final[dict[str, tuple[str, Callable[[str], bool] | None]]] = {
    "api_key": (
        r"(?<![\w-])(?:sk-ant-[A-Za-z0-9_-]{20,}|sk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}"
        r"|AIza[0-9A-Za-z_-]{35}|gh[pousr]_[A-Za-z0-9]{36,}|(?:AKIA|ASIA)[0-9A-Z]{16})(?![\w-])",
        None,
    ),
    "email": (
        r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        None,
    ),
    "iban": (r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", _iban),
    "credit_card": (r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])", _card),
    "ipv6": (
        r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|[0-9.]{7,15})?(?![\w:])",
        _ipv6,
    ),
    "ipv4": (rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\.?\d)", None),
    "phone": (
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(?\d{1,4}\)?[ .-]?){1,4}\d{2,4}"
        r"|(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])?\d{3,4}[ .-]\d{3,4})(?![\w])",
        _phone,
    ),
}  # fmt: skip
"""Preset name → (regular expression, validator of a match or ``None``)."""


# Ruling presets out before the scan, cheapest test first: substring tests and
# counts (C string search), then per preset a pattern every finding contains,
# with no lookbehind so the engine skips ahead fast. The full alternation is
# tried at every position of a text: that is what costs.
_KEY_PREFIXES: Final = ("sk-", "AIza", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "AKIA", "ASIA")
_DIGIT: Final = re.compile(r"\d")
_BIT: Final = {name: 1 << index for index, name in enumerate(PRESETS)}
_DIGIT_HINTS: Final = tuple(
    (_BIT[name], re.compile(hint).search)
    for name, hint in (
        ("iban", r"[A-Z]{2}\d{2}"),
        ("credit_card", r"\d(?:[ -]?\d){12}"),
        ("ipv4", r"\d\.\d{1,3}\.\d{1,3}\.\d"),
        # a digit after "+", or two groups of three; one leading \d lets the engine skip
        ("phone", r"\d(?:(?<=\+\d)|\d\d[ .-]\d{3})"),
    )
)
_DIGIT_BITS: Final = sum(bit for bit, _ in _DIGIT_HINTS)
_IPV6_HINT: Final = re.compile(r":[0-9A-Fa-f]{0,4}:")


def _candidates_regex(text: str, wanted: int) -> int:
    """The bits of the ``wanted`` presets whose hint occurs in ``text`` (any text)."""
    found = 0
    if wanted & _BIT["email"] and "@" in text:
        found |= _BIT["email"]
    if wanted & _BIT["api_key"]:
        for prefix in _KEY_PREFIXES:
            if prefix in text:
                found |= _BIT["api_key"]
                break
    if wanted & _BIT["ipv6"] and text.count(":") >= 2 and _IPV6_HINT.search(text) is not None:
        found |= _BIT["ipv6"]
    if wanted & _DIGIT_BITS and _DIGIT.search(text) is not None:
        for bit, search in _DIGIT_HINTS:
            if wanted & bit and search(text) is not None:
                found |= bit
    return found


# ASCII text is first mapped byte by byte to character classes (digit -> "0",
# capital -> "A", the separators the digit presets use kept, the rest "x"):
# one C pass, after which the hints are substring tests, or patterns that
# start with a literal (the regex engine then jumps from one occurrence of it
# to the next). A pattern without one costs 5 to 20 ns per character, tried
# at every position; a translation or a substring test about 1. For ASCII
# text each class test below holds exactly when the regex hint of
# _candidates_regex does, or is a necessary condition of it that is then
# confirmed by that hint.
_CLASSES: Final = bytes(
    48 if 48 <= byte <= 57 else 65 if 65 <= byte <= 90 else byte if byte in b" .-+" else 120
    for byte in range(256)
)
# digits and the card separators -> "0": a card number is a run of 13 or more
_CARD_CHARS: Final = bytes(48 if byte in b"0123456789 -" else 120 for byte in range(256))
_CARD_RUN: Final = "0" * 13
_CARD_HINT: Final = _DIGIT_HINTS[1][1]
_IPV4_CLASS_HINT: Final = re.compile(r"0\.0{1,3}\.0{1,3}\.0").search
_PHONE_CLASS_HINT: Final = re.compile(r"000[ .-]000").search
_GITHUB_KEY: Final = re.compile("gh[pousr]_").search
_A_KEY: Final = re.compile("A(?:Iza|KIA|SIA)").search


def _candidates(text: str, wanted: int) -> int:
    """The bits of the ``wanted`` presets that may occur in ``text``.

    Every bit is a necessary condition of its preset: a preset whose bit is
    clear matches nowhere in ``text``. Non-ASCII text (``\\d`` also matches
    Unicode digits) takes the regular-expression hints.
    """
    if not text.isascii():
        return _candidates_regex(text, wanted)
    found = 0
    if wanted & _BIT["email"] and "@" in text:
        found |= _BIT["email"]
    if wanted & _BIT["api_key"] and (
        "sk-" in text or _GITHUB_KEY(text) is not None or _A_KEY(text) is not None
    ):
        found |= _BIT["api_key"]
    if wanted & _BIT["ipv6"] and text.count(":") >= 2 and _IPV6_HINT.search(text) is not None:
        found |= _BIT["ipv6"]
    if not wanted & _DIGIT_BITS:
        return found
    raw = text.encode()
    classes = raw.translate(_CLASSES).decode()
    digits = classes.count("0")
    if digits < 2:  # each digit preset needs two digits at least
        return found
    if wanted & _BIT["iban"] and "AA00" in classes:
        found |= _BIT["iban"]
    if (
        wanted & _BIT["credit_card"]
        and digits >= 13
        and _CARD_RUN in raw.translate(_CARD_CHARS).decode()
        and _CARD_HINT(text) is not None
    ):
        found |= _BIT["credit_card"]
    if wanted & _BIT["ipv4"] and digits >= 4 and _IPV4_CLASS_HINT(classes) is not None:
        found |= _BIT["ipv4"]
    if wanted & _BIT["phone"] and ("+0" in classes or _PHONE_CLASS_HINT(classes) is not None):
        found |= _BIT["phone"]
    return found


# The characters a finding of each preset can start with. A pattern that begins
# with a lookahead on them lets the regex engine skip every other position
# quickly; one that begins with a lookbehind is tried at every position.
_FIRST: Final = {
    "api_key": "sAg",
    "email": r"\w.%+\-",
    "iban": "A-Z",
    "credit_card": r"\d",
    "ipv6": "0-9A-Fa-f:",
    "ipv4": r"\d",
    "phone": r"+(\d",
}


class _Combined:
    """One alternation of presets and its replacement function (the group tells the preset)."""

    __slots__ = ("labels", "pattern", "replacement", "validators")

    def __init__(self, labels: tuple[str, ...], replacement: Callable[[str, str], str]) -> None:
        self.labels = labels
        self.validators = tuple(PRESETS[label][1] for label in labels)
        first = "".join(_FIRST[label] for label in labels)
        alternatives = "|".join(f"({PRESETS[label][0]})" for label in labels)
        self.pattern = re.compile(f"(?=[{first}])(?:{alternatives})")
        self.replacement = replacement

    def replace(self, match: re.Match[str]) -> str:
        index = match.lastindex or 1  # every alternative is exactly one group
        value = match.group(0)
        validator = self.validators[index - 1]
        if validator is not None and not validator(value):
            return value
        return self.replacement(self.labels[index - 1], value)


class Redactor:
    """Finds PII in text and JSON and replaces it; pure, thread-safe, never mutates its input.

    ``presets`` are names of :data:`PRESETS` (default: all). ``patterns`` adds
    user regular expressions, as ``{"label": regex}`` or a list (label
    ``custom``). ``strategy``: ``mask`` writes ``[REDACTED:label]``, ``hash``
    writes ``[label:<12 hex>]`` (an HMAC-SHA256 of the value with ``salt``,
    stable for one salt; a random salt per ``Redactor`` when none is given),
    ``remove`` writes nothing. Credit cards must pass the Luhn check and IBANs
    the mod-97 check to be redacted.
    """

    __slots__ = (
        "_combined",
        "_custom",
        "_known",
        "_known_chars",
        "_labels",
        "_mask",
        "_salt",
        "strategy",
    )

    def __init__(
        self,
        presets: Iterable[str] | None = None,
        *,
        patterns: Mapping[str, str | re.Pattern[str]] | Iterable[str | re.Pattern[str]] = (),
        strategy: Strategy = "mask",
        salt: str | bytes | None = None,
    ) -> None:
        names = list(PRESETS) if presets is None else _preset_names(presets)
        if strategy not in _STRATEGIES:
            raise ValueError(f"strategy: expected one of {list(_STRATEGIES)}, got {strategy!r}")
        if salt is not None and not isinstance(salt, (str, bytes)):
            raise TypeError(f"salt: expected str or bytes, got {type(salt).__name__}")
        self.strategy = strategy
        if salt is None:
            salt = secrets.token_bytes(16)
        self._salt = salt.encode() if isinstance(salt, str) else salt
        self._labels = tuple(name for name in PRESETS if name in names)
        self._mask = sum(_BIT[label] for label in self._labels)
        self._combined: dict[int, _Combined] = {}
        self._custom = _user_patterns(patterns)
        # text -> its redaction. Recorded payloads repeat their strings (an agent
        # resends the whole conversation every turn): a dict lookup (the hash is
        # cached on the str) instead of a scan. Bounded by total characters.
        self._known: dict[str, str] = {}
        self._known_chars = 0

    def replacement(self, label: str, value: str) -> str:
        """What ``value`` (found as ``label``) is replaced with under this strategy."""
        if self.strategy == "mask":
            return f"[REDACTED:{label}]"
        if self.strategy == "remove":
            return ""
        digest = hmac.new(self._salt, value.encode(), hashlib.sha256).hexdigest()[:12]
        return f"[{label}:{digest}]"

    def _presets_for(self, value: str, wanted: int) -> _Combined | None:
        """The alternation of the presets that can occur in ``value``, compiled once per set."""
        mask = _candidates(value, wanted)
        if not mask:
            return None
        combined = self._combined.get(mask)
        if combined is None:
            labels = tuple(label for label in self._labels if mask & _BIT[label])
            combined = self._combined[mask] = _Combined(labels, self.replacement)
        return combined

    def text(self, value: str) -> str:
        """``value`` with every finding replaced (the same object when there is none)."""
        known = self._known.get(value)
        if known is not None:
            return value if known is _UNCHANGED else known
        if len(value) <= 2:
            return value
        return self._remember(value, self._text(value, self._mask))

    def _remember(self, value: str, redacted: str) -> str:
        size = len(value)
        if size <= _KNOWN_MAX_TEXT:
            if self._known_chars + size > _KNOWN_MAX_CHARS:
                # racing threads may both clear or miscount: only the bound's precision suffers
                self._known.clear()
                self._known_chars = 0
            self._known[value] = _UNCHANGED if redacted is value else redacted
            self._known_chars += size
        return redacted

    def _text(self, value: str, wanted: int) -> str:
        if wanted and len(value) > 2:
            combined = self._presets_for(value, wanted)
            if combined is not None:
                value = combined.pattern.sub(combined.replace, value)
        for label, pattern in self._custom:
            value = pattern.sub(self._custom_replacer(label), value)
        return value

    def _custom_replacer(self, label: str) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            return self.replacement(label, match.group(0))

        return replace

    def json(self, value: Any) -> Any:
        """A copy of a JSON value with every string redacted (keys kept); unchanged parts shared."""
        if self._custom or not isinstance(value, (dict, list)):
            return self._walk(value, None)
        # Strings not seen before are left as they are by the first walk and then
        # tested together, joined: every preset hint is a substring of a finding,
        # so a preset whose hint is absent from the joined text matches none of
        # them. Most payloads hold no PII: one walk and a few C passes over the
        # new text instead of a test per string.
        misses: list[str] = []
        out = self._walk(value, misses)
        if not misses:
            return out
        wanted = _candidates("\n".join(misses), self._mask)
        for text in misses:
            self._remember(text, self._text(text, wanted) if wanted else text)
        return self._walk(value, None) if wanted else out

    def _walk(self, value: Any, misses: list[str] | None) -> Any:
        """``value`` redacted from what is known; unknown strings go to ``misses`` (or text())."""
        if isinstance(value, str):
            known = self._known.get(value)
            if known is not None:
                return value if known is _UNCHANGED else known
            if misses is None:
                return self.text(value)
            if len(value) > 2:
                misses.append(value)
            return value
        if isinstance(value, dict):
            copy = None
            for key, item in value.items():
                new = self._walk(item, misses)
                if new is not item:
                    if copy is None:
                        copy = dict(value)
                    copy[key] = new
            return value if copy is None else copy
        if isinstance(value, list):
            items = None
            for index, item in enumerate(value):
                new = self._walk(item, misses)
                if new is not item:
                    if items is None:
                        items = list(value)
                    items[index] = new
            return value if items is None else items
        return value

    # -- the sanitizers of each family ----------------------------------------------

    def llm_request(self, request: LlmRequest, ctx: object) -> LlmRequest:
        """Sanitize-request for LLM calls: headers and body."""
        headers = self.json(request.headers)
        content = self.json(request.content)
        if headers is request.headers and content is request.content:
            return request
        return LlmRequest(headers, content)

    def payload(self, value: Json, ctx: object) -> Json:
        """Sanitize-response for LLM calls, sanitize-request/-response for tool calls."""
        return self.json(value)

    def event(self, event: Event) -> dict[str, Json] | None:
        """Event sanitizer: ``data``, ``metadata`` and ``category_profile`` of marks and scopes.

        Of LLM and tool events only ``metadata`` (exception messages) is
        redacted here: their ``data`` went through the family sanitizers
        registered with this one, and the codec annotations in their
        ``category_profile`` are built from that redacted copy.
        """
        update: dict[str, Json] = {}
        fields: tuple[str, ...] = _CALL_FIELDS
        if event.category not in ("llm", "tool"):
            fields = _ALL_FIELDS
        for field in fields:
            value = getattr(event, field)
            if value is None:
                continue
            new = self.json(value)
            if new is not value:
                update[field] = new
        return update or None


def _preset_names(presets: Iterable[str]) -> list[str]:
    if isinstance(presets, str):
        presets = [presets]
    names = list(presets)
    for name in names:
        if name not in PRESETS:
            raise ValueError(f"presets: expected names from {list(PRESETS)}, got {name!r}")
    return names


def _user_patterns(
    patterns: Mapping[str, str | re.Pattern[str]] | Iterable[str | re.Pattern[str]],
) -> list[tuple[str, re.Pattern[str]]]:
    if isinstance(patterns, (str, re.Pattern)):
        patterns = [patterns]
    pairs = (
        list(patterns.items())
        if isinstance(patterns, Mapping)
        else [("custom", pattern) for pattern in patterns]
    )
    compiled = []
    for label, pattern in pairs:
        if not isinstance(label, str) or not label:
            raise ValueError(f"patterns: expected non-empty str labels, got {label!r}")
        try:
            regex = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise ValueError(
                f"patterns: {label!r} is not a valid regular expression: {exc}"
            ) from None
        if regex.search("") is not None:
            raise ValueError(f"patterns: {label!r} matches the empty string")
        compiled.append((label, regex))
    return compiled


_UNCHANGED: Final = "\x00unchanged"  # a _known value: the text has nothing to redact
_KNOWN_MAX_TEXT: Final = 1 << 16
_KNOWN_MAX_CHARS: Final = 1 << 22

_CALL_FIELDS: Final = ("metadata",)
_ALL_FIELDS: Final = ("data", "metadata", "category_profile")
_LLM_FAMILIES: Final = ("llm_sanitize_request", "llm_sanitize_response")
_TOOL_FAMILIES: Final = ("tool_sanitize_request", "tool_sanitize_response")
_EVENT_KINDS: Final = ("mark", "scope_start", "scope_end")


class _Descendants:
    """Which events belong to a scope: the delivery thread sees starts before their children.

    Events arrive in emission order, so a span is known as inside the scope
    when its start arrives, before any child of it. Spans leave the set at
    their end; the scope's own end deregisters the event sanitizers.
    """

    __slots__ = ("_live", "_on_end", "root")

    def __init__(self, root: str, on_end: Callable[[], None]) -> None:
        self.root = root
        self._live = {root}
        self._on_end = on_end

    def inside(self, event: Event) -> bool:
        live = self._live
        phase = event.scope_category
        if phase is None:
            return event.parent_uuid in live
        if phase == "start":
            if event.parent_uuid in live:
                live.add(event.uuid)
                return True
            return False
        if event.uuid not in live:
            return False
        live.discard(event.uuid)
        if event.uuid == self.root:
            self._on_end()
        return True


class Redaction:
    """What :func:`redact` registered: ``deregister()`` (or leaving ``with``) removes all of it."""

    __slots__ = ("_lock", "_registered", "_runtime", "name", "redactor", "scope")

    def __init__(self, name: str, redactor: Redactor, scope: Span | None, runtime: Runtime) -> None:
        self.name = name
        self.redactor = redactor
        self.scope = scope
        self._runtime = runtime
        self._registered: list[tuple[str, str]] = []  # (module family or "event", kind)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Redaction {self.name!r} {len(self._registered)} registrations>"

    def _register(self, priority: int) -> None:
        redactor = self.redactor
        fns: dict[str, Callable[..., Any]] = {
            "llm_sanitize_request": redactor.llm_request,
            "llm_sanitize_response": redactor.payload,
            "tool_sanitize_request": redactor.payload,
            "tool_sanitize_response": redactor.payload,
        }
        for family in (*_LLM_FAMILIES, *_TOOL_FAMILIES):
            getattr(guardrails, f"register_{family}")(
                self.name, priority, fns[family], scope=self.scope
            )
            self._registered.append(("family", family))
        scope = self.scope
        hook: Callable[[Event], dict[str, Json] | None] = redactor.event
        if scope is not None:
            members = _Descendants(scope.uuid, self._drop_event_sanitizers)

            def hook(event: Event) -> dict[str, Json] | None:
                return redactor.event(event) if members.inside(event) else None

        for kind in _EVENT_KINDS:
            events.register_sanitizer(kind, self.name, priority, hook, runtime=self._runtime)
            self._registered.append(("event", kind))

    def _drop_event_sanitizers(self) -> None:
        with self._lock:
            kept = []
            for where, kind in self._registered:
                if where == "event":
                    events.deregister_sanitizer(kind, self.name, runtime=self._runtime)  # type: ignore[arg-type]
                else:
                    kept.append((where, kind))
            self._registered = kept

    def deregister(self) -> bool:
        """Remove every sanitizer this registration added; return whether any was still there."""
        with self._lock:
            registered, self._registered = self._registered, []
        found = False
        for where, kind in registered:
            if where == "event":
                if not self._runtime.closed:
                    found |= events.deregister_sanitizer(kind, self.name, runtime=self._runtime)  # type: ignore[arg-type]
            elif self.scope is None or not self.scope.ended:
                found |= getattr(guardrails, f"deregister_{kind}")(self.name, scope=self.scope)
        return found

    def __enter__(self) -> Redaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.deregister()


def redact(
    *presets: str,
    patterns: Mapping[str, str | re.Pattern[str]] | Iterable[str | re.Pattern[str]] = (),
    strategy: Strategy = "mask",
    salt: str | bytes | None = None,
    name: str = "llmflow.redact",
    priority: int = 0,
    scope: Span | None = None,
) -> Redaction:
    """Redact PII from everything recorded, with one registration; return its handle.

    Registers, under ``name``, the LLM and tool sanitize-request and
    sanitize-response sanitizers (globally or on ``scope``) and the event
    sanitizers of marks, scope starts and scope ends (data, metadata,
    category_profile; with ``scope``, only for events inside it, and removed
    when it ends). Only the recorded copies change: the provider, the tools
    and the caller see the real values. ``presets`` are names from
    :data:`PRESETS` (none: all of them); see :class:`Redactor` for
    ``patterns``, ``strategy`` and ``salt``. Raises ``ValueError`` naming the
    parameter for an unknown preset, strategy or invalid pattern, and
    :class:`~llmflow.DuplicateRegistrationError` when ``name`` is taken (then
    nothing stays registered).
    """
    redactor = Redactor(presets or None, patterns=patterns, strategy=strategy, salt=salt)
    handle = Redaction(name, redactor, scope, get_runtime())
    try:
        handle._register(priority)
    except BaseException:
        handle.deregister()
        raise
    return handle
