"""X-Ray subsegments for the Cognito client's HTTP attempts, when SDK tracing is on
(``XRaySdkTracing=true``).

The X-Ray SDK's ``httplib`` patch wraps ``http.client.HTTPConnection._send_request``, which
urllib3 2.x does not call (its connections send the request line and headers themselves), so the
client records its attempts itself: one ``remote`` subsegment per attempt, named after Cognito's
host, with the method, the URL and the status, as the SDK's ``requests`` patch recorded them
before the client left ``requests``. The token endpoint's URL has no query and no credentials.

A failed attempt is flagged as a fault with its exception's class name as an annotation; the
exception itself is not recorded (X-Ray would keep its text, and ``http.client``'s refusal of a
header quotes the header's value).

Nothing here imports the X-Ray SDK: it is handed the Tracer's recorder (``tracer.provider``),
which exists only when SDK tracing is on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit


class XRayAttempts:
    """Each Cognito attempt as a subsegment of the X-Ray ``recorder``'s current segment."""

    def __init__(self, recorder: Any) -> None:
        self._recorder = recorder

    @contextmanager
    def attempt(self, method: str, url: str) -> Iterator[Callable[[int], None]]:
        """A subsegment around one attempt; call what it yields with the answer's status."""
        subsegment = self._recorder.begin_subsegment(urlsplit(url).hostname or url, "remote")
        if subsegment is None:  # no segment to record in (outside an invocation)
            yield _ignore_status
            return
        subsegment.put_http_meta("method", method)
        subsegment.put_http_meta("url", url)
        try:
            yield lambda status: subsegment.put_http_meta("status", status)
        except Exception as exc:
            subsegment.add_fault_flag()
            subsegment.put_annotation("error_type", type(exc).__name__)
            raise
        finally:
            self._recorder.end_subsegment()


def _ignore_status(status: int) -> None:
    return None
