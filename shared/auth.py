"""JWT tokens (HS256) as PROTOCOL §1 defines them."""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt

from shared.errors import AuthError

# Anchored for pydantic (Rust regex: "$" is the end of the text); Python code uses fullmatch,
# because Python's "$" also matches before a trailing newline ("alice\n" must not pass).
USER_ID_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
_USER_ID = re.compile(USER_ID_PATTERN)
MAX_NAME_LENGTH = 80


class Role(StrEnum):
    STUDENT = "student"
    MENTOR = "mentor"


@dataclass(frozen=True, slots=True)
class Identity:
    """The authenticated user behind a connection."""

    user_id: str
    role: Role
    name: str
    expires_at: float | None = None  # the token's exp (epoch seconds)

    def as_dict(self) -> dict[str, str]:
        return {"id": self.user_id, "role": self.role.value, "name": self.name}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Identity:
        return cls(user_id=str(raw["id"]), role=Role(raw["role"]), name=str(raw.get("name", "")))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if that is what it is."""
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return None


def verify_token(token: str | None, secret: str) -> Identity:
    """Return the identity in ``token`` or raise :class:`AuthError` saying why not.

    Tokens verified recently are remembered (a reconnect storm presents the same tokens
    again); their expiry is still checked on every use."""
    if not token:
        raise AuthError("missing token")
    identity = _verified(token, secret)
    if identity.expires_at is not None and identity.expires_at <= time.time():
        raise AuthError("token expired")
    return identity


@functools.lru_cache(maxsize=4096)  # only successes are cached: a bad token costs each time
def _verified(token: str, secret: str) -> Identity:
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "sub", "role"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token expired") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}") from exc
    sub, role, name = claims.get("sub"), claims.get("role"), claims.get("name")
    if not isinstance(sub, str) or not _USER_ID.fullmatch(sub):
        raise AuthError("invalid sub claim")
    if role not in (Role.STUDENT.value, Role.MENTOR.value):
        raise AuthError("unknown role")
    if name is None:
        name = sub
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
        raise AuthError("invalid name claim")
    return Identity(user_id=sub, role=Role(role), name=name, expires_at=float(claims["exp"]))


def issue_token(
    user_id: str, role: Role | str, secret: str, name: str | None = None, ttl_s: float = 86_400
) -> str:
    """Make a token (for development tools and tests; production tokens come from the app)."""
    claims: dict[str, Any] = {"sub": user_id, "role": str(role), "exp": int(time.time() + ttl_s)}
    if name is not None:
        claims["name"] = name
    return jwt.encode(claims, secret, algorithm="HS256")
