"""What every resource shares: the session it calls, and (for creates) the one create path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._create import Creator
from .._janitor import Janitor
from .._poller import Poller
from .._session import Session

__all__ = ["CreatingResource", "Resource", "WaitingResource", "choice", "optional_strings"]


class Resource:
    """A thin area of the API: methods build a path, call the session, structure the reply."""

    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session


class CreatingResource(Resource):
    """A resource that starts predictions or trainings, through the one create path."""

    __slots__ = ("_creator",)

    def __init__(self, session: Session, creator: Creator) -> None:
        super().__init__(session)
        self._creator = creator


class WaitingResource(CreatingResource):
    """A resource whose jobs are waited for on the client's one poller (predictions, trainings)."""

    __slots__ = ("_janitor", "_poller")

    def __init__(
        self, session: Session, creator: Creator, poller: Poller, janitor: Janitor
    ) -> None:
        super().__init__(session, creator)
        self._poller = poller
        self._janitor = janitor


def choice(name: str, value: Any, allowed: Iterable[str], *, required: bool = False) -> Any:
    """``value`` if it is one of ``allowed`` (or None, unless required); else a ValueError.

    Refused here, before a request: the server's 400 would say less, and cost a request.
    """
    options = tuple(allowed)
    if value is None and not required:
        return None
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value


def optional_strings(**fields: Any) -> dict[str, str]:
    """The fields that were given (not None), each checked to be a string."""
    body: dict[str, str] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise TypeError(f"{key} must be a string, got {type(value).__name__}")
        body[key] = value
    return body
