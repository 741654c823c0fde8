"""``client.account``: who the token belongs to."""

from __future__ import annotations

from ..types import Account as AccountType
from ._base import Resource

__all__ = ["Account"]


class Account(Resource):
    """The token's account."""

    __slots__ = ()

    async def get(self) -> AccountType:
        """The account the API token belongs to."""
        return await self._session.request_json("GET", "/account", AccountType)
