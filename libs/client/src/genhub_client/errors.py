"""The error every API call raises for a non-2xx answer."""

from typing import Any

import httpx


class GenhubError(Exception):
    """An error answer from genhub: HTTP `status`, stable `code`, human `message`, raw `body`."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body

    @classmethod
    def from_response(cls, response: httpx.Response) -> "GenhubError":
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        code, message = "http_error", response.reason_phrase
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict):
                code = str(error.get("code", code))
                message = str(error.get("message", message))
            else:
                code = str(body.get("code", code))
                message = str(body.get("detail", message))
        return cls(response.status_code, code, message, body)
