"""Per-service overrides of a policy section: merged key by key onto its defaults, and
each one's problems reported at its own key path.

A sidecar's ``resilience.services.<name>`` and the edge's
``outlier_detection.services.<name>`` take any part of their ``defaults``;
:func:`policy_for` makes the whole policy of one service, and
:func:`check_overrides` validates every override when the file is loaded, so a
bad one is refused naming ``...services.<name>.<key>``, not the key it would
have had in the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails

from mesh.config.merge import deep_merge

P = TypeVar("P", bound=BaseModel)


def policy_for(defaults: P, override: Mapping[str, Any] | None) -> P:
    """``defaults`` with ``override`` merged in (mappings key by key), validated."""
    if not override:
        return defaults
    return type(defaults).model_validate(deep_merge(defaults.model_dump(), override))


def check_overrides(
    defaults: P, overrides: Mapping[str, Mapping[str, Any]], field: str = "services"
) -> None:
    """Raise a ValidationError located at ``(field, <service>, <key>...)`` for the first
    override that does not make a valid policy."""
    for name, override in overrides.items():
        try:
            policy_for(defaults, override)
        except ValidationError as exc:
            details: list[InitErrorDetails] = []
            for error in exc.errors():
                detail: InitErrorDetails = {
                    "type": error["type"],
                    "loc": (field, name, *error["loc"]),
                    "input": error["input"],
                }
                if "ctx" in error:
                    detail["ctx"] = error["ctx"]
                details.append(detail)
            raise ValidationError.from_exception_data(exc.title, details) from None
