"""What llmflow keeps out of the log: credential headers and secret-shaped text.

* Every recorded copy of a request loses the headers in
  :func:`credential_headers` (built in: :data:`CREDENTIAL_HEADERS`), matched
  case-insensitively after stripping surrounding whitespace and zero-width
  characters from the name. The provider still receives every header.
* Recorded exception messages and all recorded metadata have secret-shaped
  substrings replaced by ``[REDACTED]``: credential parameters (``key=``,
  ``api_key=``, ``token=``, ... in URLs and text), ``Bearer``/``Basic``
  credentials and API-key shapes (:data:`SECRET_PATTERNS`). The exception the
  application receives is never changed.

Both lists can be extended for the whole process; nothing can be removed.
See ``docs/security.md``.
"""

from __future__ import annotations

from ._credentials import (
    CREDENTIAL_HEADERS,
    REDACTED,
    SECRET_PATTERNS,
    credential_headers,
    register_credential_header,
    register_secret_pattern,
    scrub_text,
)

__all__ = [
    "CREDENTIAL_HEADERS",
    "REDACTED",
    "SECRET_PATTERNS",
    "credential_headers",
    "register_credential_header",
    "register_secret_pattern",
    "scrub_text",
]
