"""The HTTP requests ``make verify`` sends, and what it keeps of the answers.

Through the proxy it asks for a token with the client's real credentials (HTTP Basic, as the
README's examples do) and keeps the status, the RFC 6749 error, ``token_type``, ``expires_in``
and a digest of the token (to recognise the same token again), never the token.

Straight to the pool it sends token requests with the client's ID and a secret that is
deliberately wrong: the web ACL's rule looks at the path, the grant type and the
``x-origin-verify`` header, not at credentials, so these requests test the rule just as well,
yet a rule that lets them through gets Cognito's ``invalid_client`` rather than minting a
billed token outside the proxy, and WAF's sampled requests (which hold the request headers,
``Authorization`` included) never see the real secret. Each probe's ``User-Agent`` names the
probe and this run, so its WAF sample can be told apart from other clients' requests.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import requests

#: What every direct probe sends as its client secret (never a real one).
NOT_THE_SECRET = "make-verify-deliberately-wrong-secret"  # noqa: S105
#: An authorization code no pool issued.
NOT_A_CODE = "make-verify-not-an-authorization-code"
REDIRECT_URI = "https://example.invalid/callback"
USER_AGENT_PRODUCT = "cognito-token-proxy-verify/1"
HTTP_TIMEOUT = 10

BASIC = "client_credentials, HTTP Basic"
BODY = "client_credentials, secret in the body"
CODE = "authorization_code"
PROBES = (BASIC, BODY, CODE)


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str = field(repr=False)
    scope: str = ""


@dataclass(frozen=True)
class Answer:
    """What an HTTP answer said, without its secrets: ``body`` is kept only to compare with
    WAF's custom response and is never printed; ``token_digest`` only recognises a token."""

    status: int
    error: str | None = None
    token_type: str | None = None
    expires_in: int | None = None
    token_digest: str | None = field(default=None, repr=False)
    body: bytes = field(default=b"", repr=False)
    failure: str | None = None  # the request got no answer (its exception's type and cause)

    @property
    def answered(self) -> bool:
        return self.failure is None

    def describe(self) -> str:
        """The status and RFC 6749 error, as printable text."""
        if self.failure:
            return f"no answer ({self.failure})"
        return f"{self.status} {self.error}" if self.error else str(self.status)


class Prober:
    """Sends the probes of one run (its ``run_id`` marks their User-Agent)."""

    def __init__(self, session: requests.Session | None = None, run_id: str | None = None):
        self._session = session or requests.Session()
        self.run_id = run_id or secrets.token_hex(4)

    def user_agent(self, probe: str) -> str:
        return f"{USER_AGENT_PRODUCT} ({probe.replace(',', '')}; run {self.run_id})"

    def token(self, url: str, credentials: Credentials) -> Answer:
        """A client_credentials request through the proxy."""
        form = {"grant_type": "client_credentials"}
        if credentials.scope:
            form["scope"] = credentials.scope
        return self._post(
            url,
            form,
            auth=(credentials.client_id, credentials.client_secret),
            user_agent=f"{USER_AGENT_PRODUCT} (proxy; run {self.run_id})",
        )

    def direct(self, url: str, probe: str, client_id: str, scope: str = "") -> Answer:
        """One of :data:`PROBES` straight to the pool's token endpoint."""
        auth: tuple[str, str] | None = None
        if probe == CODE:
            form = {
                "grant_type": "authorization_code",
                "code": NOT_A_CODE,
                "redirect_uri": REDIRECT_URI,
                "client_id": client_id,
            }
        else:
            form = {"grant_type": "client_credentials"}
            if scope:
                form["scope"] = scope
            if probe == BASIC:
                auth = (client_id, NOT_THE_SECRET)
            else:
                form.update(client_id=client_id, client_secret=NOT_THE_SECRET)
        return self._post(url, form, auth=auth, user_agent=self.user_agent(probe))

    def _post(
        self, url: str, form: dict[str, str], *, auth: tuple[str, str] | None, user_agent: str
    ) -> Answer:
        try:
            response = self._session.post(
                url,
                data=form,
                auth=auth,
                headers={"User-Agent": user_agent, "Accept": "application/json"},
                timeout=HTTP_TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return Answer(0, failure=f"{type(exc).__name__}: {_cause(exc)}")
        return read_answer(response.status_code, response.content)


def read_answer(status: int, content: bytes) -> Answer:
    """The printable parts of a token endpoint's answer (and a digest of any token)."""
    try:
        payload: Any = json.loads(content)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return Answer(status, body=content)
    token = payload.get("access_token")
    expires_in = payload.get("expires_in")
    error = payload.get("error")
    return Answer(
        status,
        error=error if isinstance(error, str) and error.isprintable() else None,
        token_type=str(payload["token_type"])
        if isinstance(payload.get("token_type"), str)
        else None,
        expires_in=expires_in if isinstance(expires_in, int) else None,
        token_digest=hashlib.sha256(token.encode()).hexdigest() if isinstance(token, str) else None,
        body=content,
    )


def _cause(exc: BaseException) -> str:
    """The innermost cause's type: the message may hold a URL, never a secret, but keep it
    short."""
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    return type(inner).__name__
