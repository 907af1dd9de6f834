"""rcstore.errors: the exceptions of the rcstore client.

Every failure the server reports raises ``rcstore.Error`` or, for each code of
the protocol (SPEC sections 4, 8, 9, 10), its subclass named after the code in
CamelCase (``NOT_FOUND`` raises ``NotFound``). Two more are the client's own:
``ConnectionFailed`` (no usable connection) and ``Timeout`` (a wait ran out);
they are also the builtin ``ConnectionError`` and ``TimeoutError``, so code
that already catches those keeps working. Nothing here does I/O.
"""

__all__ = [
    "Error",
    "BadRequest",
    "UnknownMethod",
    "BadParams",
    "NotFound",
    "NotHeld",
    "NameNotFound",
    "TooLarge",
    "OutOfMemory",
    "QuotaExceeded",
    "AuthRequired",
    "AuthFailed",
    "SessionBusy",
    "SessionExpired",
    "TokenInvalid",
    "Internal",
    "PersistenceFailed",
    "NotLeader",
    "PermissionDenied",
    "ConnectionFailed",
    "Timeout",
    "error_from_wire",
]


class Error(Exception):
    """A failed call. ``code`` is the protocol's code (``"NOT_FOUND"``, ...,
    or a client-side one such as ``"CONNECTION_FAILED"``); ``message`` is the
    server's (or the client's) explanation in words."""

    code = "ERROR"

    def __init__(self, message="", code=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self):
        return f"{self.code}: {self.message}" if self.message else self.code

    def __repr__(self):
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def __reduce__(self):
        # Picklable (multiprocessing hands exceptions between processes).
        return (_rebuild, (type(self), self.code, self.message, self.__dict__.copy()))


def _rebuild(cls, code, message, state):
    e = cls.__new__(cls)
    Exception.__init__(e, message)
    e.__dict__.update(state)
    e.code = code
    e.message = message
    return e


class BadRequest(Error):
    """The request was not a msgpack-RPC request the server could read."""

    code = "BAD_REQUEST"


class UnknownMethod(Error):
    """No such method (or a debug method on a server without them)."""

    code = "UNKNOWN_METHOD"


class BadParams(Error):
    """The parameters do not fit the method."""

    code = "BAD_PARAMS"


class NotFound(Error):
    """No object with that id (or, for unlink, no such entry in its refs)."""

    code = "NOT_FOUND"


class NotHeld(Error):
    """A decref of more holds than this session has."""

    code = "NOT_HELD"


class NameNotFound(Error):
    """No such name."""

    code = "NAME_NOT_FOUND"


class TooLarge(Error):
    """Data, refs or a message over the server's limits."""

    code = "TOO_LARGE"


class OutOfMemory(Error):
    """The server's maxmemory is reached: only reads and frees are served."""

    code = "OUT_OF_MEMORY"


class QuotaExceeded(Error):
    """A per-session or per-connection quota is spent."""

    code = "QUOTA_EXCEEDED"


class AuthRequired(Error):
    """The server wants a login (``auth``, and ``user``) first."""

    code = "AUTH_REQUIRED"


class AuthFailed(Error):
    """Unknown user or wrong token; the server closes the connection."""

    code = "AUTH_FAILED"


class SessionBusy(Error):
    """The session to resume is attached to another connection."""

    code = "SESSION_BUSY"


class SessionExpired(Error):
    """The session to resume is gone: its lease expired, or a server without
    a data directory restarted. Its holds are released."""

    code = "SESSION_EXPIRED"


class TokenInvalid(Error):
    """A share token that is unknown, expired or already claimed."""

    code = "TOKEN_INVALID"


class Internal(Error):
    """A failure inside the server."""

    code = "INTERNAL"


class PersistenceFailed(Error):
    """The server cannot write its journal now; nothing was changed."""

    code = "PERSISTENCE_FAILED"


class NotLeader(Error):
    """A cluster node that is not the leader. ``leader`` is the leader's
    client address (``"tcp://host:port"``), or None while there is none."""

    code = "NOT_LEADER"

    def __init__(self, message="", code=None, leader=None):
        super().__init__(message, code)
        self.leader = leader


class PermissionDenied(Error):
    """The user's role, or names prefix, does not allow the call."""

    code = "PERMISSION_DENIED"


class ConnectionFailed(Error, ConnectionError):
    """No usable connection: connecting failed, the server closed it, or
    sent something that is not msgpack-RPC. Raised by the client itself."""

    code = "CONNECTION_FAILED"


class Timeout(Error, TimeoutError):
    """A wait ran out (a call, a connect, or ``notifications(timeout=...)``).
    Raised by the client itself."""

    code = "TIMEOUT"


_BY_CODE = {
    cls.code: cls
    for cls in (
        BadRequest,
        UnknownMethod,
        BadParams,
        NotFound,
        NotHeld,
        NameNotFound,
        TooLarge,
        OutOfMemory,
        QuotaExceeded,
        AuthRequired,
        AuthFailed,
        SessionBusy,
        SessionExpired,
        TokenInvalid,
        Internal,
        PersistenceFailed,
        NotLeader,
        PermissionDenied,
    )
}


def error_from_wire(obj):
    """The exception for a response's error object: a map ``{"code": str,
    "message": str}`` (``NOT_LEADER``'s also has ``"leader"``). A code this
    client does not know gives a plain ``Error`` carrying that code; an
    object that is not such a map gives an ``Error`` with code
    ``"BAD_RESPONSE"`` (the server broke the protocol)."""
    if not isinstance(obj, dict):
        return Error(f"the server sent an error that is not a map: {obj!r}", "BAD_RESPONSE")
    code = obj.get("code")
    message = obj.get("message")
    if not isinstance(message, str):
        message = "" if message is None else repr(message)
    if not isinstance(code, str):
        return Error(f"the server sent an error without a code: {obj!r}", "BAD_RESPONSE")
    cls = _BY_CODE.get(code)
    if cls is None:
        return Error(message, code)
    if cls is NotLeader:
        leader = obj.get("leader")
        return NotLeader(message, leader=leader if isinstance(leader, str) and leader else None)
    return cls(message)
