"""``client.webhooks``: the secret that signs your webhook deliveries."""

from __future__ import annotations

from ..types import WebhookSecret
from ._base import Resource

__all__ = ["Webhooks"]


class Webhooks(Resource):
    """Webhook settings."""

    __slots__ = ()

    async def default_secret(self) -> WebhookSecret:
        """The default signing secret (``.key`` is ``whsec_...``)."""
        return await self._session.request_json("GET", "/webhooks/default/secret", WebhookSecret)
