"""``client.hardware``: the hardware SKUs models can run on."""

from __future__ import annotations

from ..types import Hardware as HardwareType
from ._base import Resource

__all__ = ["Hardware"]


class Hardware(Resource):
    """Hardware SKUs."""

    __slots__ = ()

    async def list(self) -> list[HardwareType]:
        """Every SKU, as a plain list: the API returns one array, not pages."""
        return await self._session.request_json("GET", "/hardware", list[HardwareType])
