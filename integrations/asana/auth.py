"""Asana credentials: a personal access token, or OAuth with refresh (reference/asana.md §1)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.utils import timezone

from integrations.asana.shapes import REFRESH_MARGIN, token_url_for
from integrations.base import errors
from integrations.base.ratelimit import fingerprint

if TYPE_CHECKING:
    from integrations.asana.client import AsanaClient

log = logging.getLogger(__name__)


class PatAuth:
    """A personal access (or service account) token: nothing to refresh."""

    kind = "personal access token"

    def __init__(self, token: str):
        if not token:
            raise errors.ConfigurationError("Asana connection has no personal access token")
        self.token = token

    def bearer(self, client: AsanaClient) -> str:
        return self.token

    def refresh(self, client: AsanaClient) -> bool:
        return False

    def budget_key(self) -> str:
        return fingerprint(self.token)


class OAuthAuth:
    """OAuth access token refreshed with the stored refresh token; new tokens persisted at once."""

    kind = "OAuth access token"

    def __init__(self, connection: Any):
        if not (connection.refresh_token and connection.client_id and connection.client_secret):
            raise errors.ConfigurationError(
                "Asana OAuth connection needs client_id, client_secret and a refresh token"
            )
        self.connection = connection

    def budget_key(self) -> str:
        # The access token changes hourly; the budget belongs to the grant (one connection).
        return fingerprint(f"oauth:{self.connection.pk}:{self.connection.client_id}")

    def bearer(self, client: AsanaClient) -> str:
        conn = self.connection
        expires = conn.token_expires_at
        if not conn.access_token or expires is None or expires - REFRESH_MARGIN <= timezone.now():
            self.refresh(client)
        return conn.access_token

    def _adopt_fresh_from_db(self, used_token: str) -> bool:
        """Another worker may have refreshed already: take its token instead of refreshing again."""
        model = type(self.connection)
        row = model.objects.filter(pk=self.connection.pk).first()
        if row is None or not row.access_token or row.access_token == used_token:
            return False
        if row.token_expires_at and row.token_expires_at - REFRESH_MARGIN > timezone.now():
            for name in ("access_token", "refresh_token", "token_expires_at"):
                setattr(self.connection, name, getattr(row, name))
            return True
        return False

    def refresh(self, client: AsanaClient) -> bool:
        conn = self.connection
        if conn.pk and self._adopt_fresh_from_db(conn.access_token):
            return True
        form = {
            "grant_type": "refresh_token",
            "client_id": conn.client_id,
            "client_secret": conn.client_secret,
            "refresh_token": conn.refresh_token,
        }
        try:
            response = client.request(
                "POST",
                token_url_for(client.base_url),
                data=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                authenticated=False,
            )
        except (errors.AuthFailed, errors.Invalid, errors.Forbidden) as exc:
            # A worker that refreshed a moment ago may have rotated the refresh token under us.
            if conn.pk and self._adopt_fresh_from_db(conn.access_token):
                return True
            raise errors.AuthFailed(
                f"the OAuth refresh token was rejected ({exc.message}); reconnect the Asana app",
                system="asana",
                status=exc.status,
            ) from exc
        body = client.json(response) or {}
        access = body.get("access_token")
        if not access:
            raise errors.UnexpectedResponse("OAuth token response has no access_token", system="asana")
        client.register_secrets(access, body.get("refresh_token"))
        conn.access_token = access
        # Rotation is UNVERIFIED (§1.2): keep the old refresh token when none comes back.
        conn.refresh_token = body.get("refresh_token") or conn.refresh_token
        conn.token_expires_at = timezone.now() + timedelta(seconds=int(body.get("expires_in") or 3600))
        if conn.pk:
            type(conn).objects.filter(pk=conn.pk).update(
                access_token=conn.access_token,
                refresh_token=conn.refresh_token,
                token_expires_at=conn.token_expires_at,
            )
        log.info("asana: refreshed the OAuth access token of connection %s", conn.pk)
        return True
