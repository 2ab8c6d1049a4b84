"""A fake client of Cognito's token endpoint (the service's Cognito port): valid credentials get
a new JWT-shaped token per call, and a script of answers or failures comes first when given."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable

from tests.fakes.token_requests import CLIENT_ID, CLIENT_SECRET
from token_proxy.deadline import Deadline
from token_proxy.model import TokenRequest, UpstreamResponse


def jwt_like(serial: int) -> str:
    def part(data: dict[str, object]) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'kid': 'k1'})}.{part({'n': serial})}.c2lnbmF0dXJl{serial:04d}"


def json_response(status: int, body: object) -> UpstreamResponse:
    return UpstreamResponse(status=status, body=json.dumps(body).encode())


Outcome = UpstreamResponse | Exception | Callable[[TokenRequest], UpstreamResponse]


class FakeCognitoClient:
    """Cognito stand-in: valid credentials get a new JWT-shaped token per call.

    ``script`` holds outcomes (a response, an exception to raise, or a callable) used before
    the default behaviour. ``delay`` makes each call take real time (for concurrency tests).
    """

    def __init__(
        self,
        clients: dict[str, str] | None = None,
        *,
        expires_in: int = 3600,
        delay: float = 0.0,
    ) -> None:
        self.clients = clients if clients is not None else {CLIENT_ID: CLIENT_SECRET}
        self.expires_in = expires_in
        self.delay = delay
        self.script: list[Outcome] = []
        self.requests: list[TokenRequest] = []
        self.deadlines: list[Deadline | None] = []
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        return len(self.requests)

    def fetch(self, request: TokenRequest, deadline: Deadline | None = None) -> UpstreamResponse:
        with self._lock:
            self.requests.append(request)
            self.deadlines.append(deadline)
            serial = len(self.requests)
            outcome = self.script.pop(0) if self.script else None
        if self.delay:
            time.sleep(self.delay)
        if isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, UpstreamResponse):
            return outcome
        if outcome is not None:
            return outcome(request)
        if self.clients.get(request.client_id) != request.client_secret:
            return json_response(400, {"error": "invalid_client"})
        return json_response(
            200,
            {
                "access_token": jwt_like(serial),
                "expires_in": self.expires_in,
                "token_type": "Bearer",
            },
        )
