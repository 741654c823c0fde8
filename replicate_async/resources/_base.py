"""What every resource shares: the session it calls, and (for creates) the one create path."""

from __future__ import annotations

from .._create import Creator
from .._session import Session

__all__ = ["CreatingResource", "Resource"]


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
