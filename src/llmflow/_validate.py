"""Validators of entry-point arguments: each raises naming the parameter.

Every public entry point validates what it is given here, before anything runs
or is emitted, so a bad argument is the caller's error at the call site and
never a lost event later. Wrong types raise :class:`ParameterTypeError`, wrong
values :class:`InvalidParameterError` (also ``TypeError``/``ValueError``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from ._errors import InvalidParameterError, ParameterTypeError
from ._event import CATEGORIES
from ._types import DataSchema, JsonObject, check_text

__all__ = [
    "check_callable",
    "check_category",
    "check_data_schema",
    "check_error",
    "check_model_name",
    "check_name",
    "check_profile",
    "from_params",
    "normalize_attributes",
]

_EMPTY: Final[tuple[str, ...]] = ()


def check_name(name: object, param: str = "name") -> str:
    """Validate an event name: a non-empty str that is valid Unicode (no lone surrogate)."""
    if not isinstance(name, str) or not name:
        raise ParameterTypeError(f"{param}: expected a non-empty str, got {name!r}")
    return name if name.isascii() else check_text(name, param)


def check_callable(value: object, param: str) -> None:
    """:class:`ParameterTypeError` naming ``param`` unless ``value`` is callable."""
    if not callable(value):
        raise ParameterTypeError(f"{param}: expected a callable, got {type(value).__name__}")


def normalize_attributes(
    attributes: Iterable[object], param: str = "attributes"
) -> tuple[str, ...]:
    """Sorted, de-duplicated attribute names; enum flags contribute their names."""
    if attributes == () or attributes is None:
        return _EMPTY
    if isinstance(attributes, str):
        raise ParameterTypeError(
            f"{param}: expected an iterable of str, got a single str {attributes!r}"
        )
    names: set[str] = set()
    try:
        items = iter(attributes)
    except TypeError:
        raise ParameterTypeError(
            f"{param}: expected an iterable of str, got {type(attributes).__name__}"
        ) from None
    for item in items:
        if isinstance(item, str) and item:
            names.add(item if item.isascii() else check_text(item, param))
            continue
        flag_names = getattr(item, "attribute_names", None)
        if flag_names is None:
            raise ParameterTypeError(
                f"{param}: expected non-empty str or LlmAttributes, got {item!r}"
            )
        names.update(flag_names)
    return tuple(sorted(names))


def check_category(category: object, profile: Mapping[str, Any] | None) -> str:
    """Validate ``category`` (and the ``subtype`` that ``custom`` requires)."""
    if not isinstance(category, str) or category not in CATEGORIES:
        raise InvalidParameterError(
            f"category: expected one of {sorted(CATEGORIES)}, got {category!r}"
        )
    if category == "custom":
        subtype = None if profile is None else profile.get("subtype")
        if not isinstance(subtype, str) or not subtype:
            raise InvalidParameterError(
                "category_profile: category 'custom' requires category_profile['subtype'], "
                "a dotted vendor name such as 'acme.planner'"
            )
    return category


def check_data_schema(value: object) -> DataSchema | None:
    """Accept a :class:`DataSchema`, a ``{"name", "version"}`` mapping, or ``None``."""
    if value is None or isinstance(value, DataSchema):
        return value
    if isinstance(value, Mapping) and set(value) == {"name", "version"}:
        name, version = value["name"], value["version"]
        if isinstance(name, str) and name and isinstance(version, str) and version:
            check_text(name, "data_schema.name")
            check_text(version, "data_schema.version")
            return DataSchema(name, version)
    raise ParameterTypeError(
        f"data_schema: expected DataSchema or {{'name': str, 'version': str}}, got {value!r}"
    )


def check_profile(value: object, param: str = "category_profile") -> JsonObject | None:
    """``category_profile`` must be ``None`` or a dict."""
    if value is None or isinstance(value, dict):
        return value
    raise ParameterTypeError(f"{param}: expected a dict or None, got {type(value).__name__}")


def check_model_name(model_name: object) -> str | None:
    """``model_name``: ``None`` or a str that is valid Unicode."""
    if model_name is None:
        return None
    if not isinstance(model_name, str):
        raise ParameterTypeError(
            f"model_name: expected a str or None, got {type(model_name).__name__}"
        )
    return model_name if model_name.isascii() else check_text(model_name, "model_name")


def from_params(params: object, **others: object) -> dict[str, Any]:
    """The fields of a params object, for an entry point that was passed one.

    ``others`` are the entry point's other arguments, by name; each must still
    be at its default (``None`` or ``()``), else :class:`ParameterTypeError`
    names them: a call takes a params object or separate arguments, not both.
    """
    clashes = [key for key, value in others.items() if value is not None and value != ()]
    if clashes:
        raise ParameterTypeError(
            f"pass either a {type(params).__name__} or separate arguments, not both "
            f"(also got {', '.join(clashes)})"
        )
    return {name: getattr(params, name) for name in params.__dataclass_fields__}  # type: ignore[attr-defined]


def check_error(error: object, param: str = "error") -> None:
    """``error`` must be an exception instance (``None`` is checked by the caller)."""
    if not isinstance(error, BaseException):
        raise ParameterTypeError(
            f"{param}: expected an exception instance or None, got {type(error).__name__}"
        )
