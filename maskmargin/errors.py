"""Errors that carry what a user needs: which parameter is wrong and what to do."""

from __future__ import annotations


class MaskMarginError(Exception):
    """An error whose message is meant for the user (no traceback needed)."""

    code = "maskMarginError"

    def __init__(self, message: str, *, parameter: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        if code:
            self.code = code


class InvalidParameter(MaskMarginError):
    """A task or node input outside its allowed range or type."""

    code = "invalidParameter"


class ModelNotAvailable(MaskMarginError):
    """A model whose weights are missing, corrupt or not loadable."""

    code = "modelNotAvailable"


class UnsafeModelFile(MaskMarginError):
    """A model file whose pickle references code outside the allow-list."""

    code = "unsafeModelFile"


class BackendBroken(MaskMarginError):
    """A detection library that is missing or broken (never reported as 'nothing detected')."""

    code = "backendUnavailable"


class RemoteError(MaskMarginError):
    """A remote Image Masking API that failed, answered malformed data, or could not be reached."""

    code = "remoteError"


class AuthenticationError(RemoteError):
    """The remote service refused the API key (HTTP 401/403) or needs credit (HTTP 402)."""

    code = "authenticationFailed"


class UnsafeURL(InvalidParameter):
    """A URL that points at a private, loopback, link-local or reserved address, or is not http(s)."""

    code = "unsafeURL"
