"""API keys as FastAPI dependencies: ``Depends(require_api_key)`` on a route or router, ``require_admin_key`` for
admin routes.

Keys come from the settings (``NEWSCLF_API_KEYS``, ``NEWSCLF_ADMIN_KEYS``: comma-separated, so a new key can be
added before the old one is removed). A presented key is compared with every configured key in constant time
(``hmac.compare_digest``, no early exit), so timing does not tell how much of a key was right. Health probes are
not behind these dependencies: an orchestrator needs no key to see that the process lives.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.errors import ServiceError

# auto_error=False: our dependency words the 401 (and the scheme still shows in /docs, with its Authorize button).
_bearer = HTTPBearer(auto_error=False, description="An API key from NEWSCLF_API_KEYS (or NEWSCLF_ADMIN_KEYS for "
                     "/v1/admin routes), sent as `Authorization: Bearer <key>`; only needed when keys are set")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def key_matches(presented: str, keys: list[str]) -> bool:
    """Whether ``presented`` is one of ``keys``, comparing against all of them in constant time."""
    given = presented.encode("utf-8", "surrogatepass")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode("utf-8"))
    return matched


def _check(credentials: HTTPAuthorizationCredentials | None, keys: list[str], setting: str) -> None:
    if credentials is None:
        raise ServiceError(401, "unauthorized", f"this route needs an API key: send `Authorization: Bearer <key>` "
                           f"with a key from {setting}", headers=_CHALLENGE)
    if not key_matches(credentials.credentials, keys):
        raise ServiceError(401, "unauthorized", f"the API key is not valid: use a key from {setting}",
                           headers=_CHALLENGE)


def _settings(request: Request):
    return request.app.state.service.settings


async def require_api_key(request: Request, credentials: Credentials) -> None:
    """Passes when no API keys are configured, or the request carries one of them (or an admin key)."""
    settings = _settings(request)
    keys = (settings.api_key_list + settings.admin_key_list) if settings is not None else []
    if settings is not None and settings.api_key_list:
        _check(credentials, keys, "NEWSCLF_API_KEYS")


async def require_admin_key(request: Request, credentials: Credentials) -> None:
    """Passes only with an admin key; when none is configured the admin routes are disabled (403)."""
    settings = _settings(request)
    keys = settings.admin_key_list if settings is not None else []
    if not keys:
        raise ServiceError(403, "admin_disabled", "admin routes are disabled: set NEWSCLF_ADMIN_KEYS to enable them")
    _check(credentials, keys, "NEWSCLF_ADMIN_KEYS")
