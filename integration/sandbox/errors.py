"""HighLevel's error bodies (facts §11): NestJS-style for resources, {error, error_description} for OAuth."""

from __future__ import annotations

from http import HTTPStatus

__all__ = [
    "AUTH_CLASS_MESSAGE",
    "INVALID_JWT",
    "LOCATION_FORBIDDEN",
    "SCOPE_MESSAGE",
    "ApiError",
    "OAuthError",
    "validation_error",
]

INVALID_JWT = "Invalid JWT"
SCOPE_MESSAGE = "The token is not authorized for this scope."
AUTH_CLASS_MESSAGE = (
    "This authClass type is not allowed to access this scope. "
    "Please verify your IAM configuration if this is not the case."
)
LOCATION_FORBIDDEN = "The token does not have access to this location."


class ApiError(Exception):
    """An answer other than success from a resource endpoint; rendered as {"statusCode", "message"[, "error"]}."""

    def __init__(self, status: int, message: str | list[str], *, error: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message if isinstance(message, str) else "; ".join(message))
        self.status = status
        self.message = message
        self.error = error
        self.headers = headers or {}

    def body(self) -> dict:
        body: dict = {"statusCode": self.status, "message": self.message}
        if self.error:
            body["error"] = self.error
        return body


def validation_error(*messages: str) -> ApiError:
    """422 with `message` as a list, as HighLevel's class-validator answers."""
    return ApiError(422, list(messages), error=HTTPStatus(422).phrase)


class OAuthError(Exception):
    """An answer from /oauth/token: {"error": "UnAuthorized!", "error_description": ...}."""

    def __init__(self, description: str, *, status: int = 401, error: str = "UnAuthorized!") -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.error = error

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}
