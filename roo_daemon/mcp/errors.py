"""Why an MCP call failed, as the tools tell the model. Kept apart from the
modules that use the SDK, which the daemon imports only once a server is
used (importing it costs seconds of start-up and tens of MB)."""


class Unavailable(Exception):
    """The server cannot take the call (not running, failed to start, died)."""


class CallTimeout(Exception):
    """The call outlived the server's ``timeout``."""


class ServerError(Exception):
    """The server answered the request with a JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ResultTooLarge(Exception):
    """A result over ``mcp.max_result_bytes``; the message is the model's error text."""
