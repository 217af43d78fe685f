"""sysinv.common.exception: SysinvException and the exceptions the plugins raise or catch."""

from typing import Any


class SysinvException(Exception):
    """The message is `message`, or the class's message formatted with the keyword arguments."""

    message = "An unknown exception occurred."
    code = 500

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.kwargs.setdefault("code", self.code)
        if not message:
            try:
                message = self.message % kwargs
            except (KeyError, TypeError):
                message = self.message
        super().__init__(message)

    def format_message(self) -> str:
        return str(self)


class Invalid(SysinvException):
    message = "Unacceptable parameters."
    code = 400


class Conflict(SysinvException):
    message = "Conflict."
    code = 409


class NotFound(SysinvException):
    message = "Resource could not be found."
    code = 404


class KubeAppNotFound(NotFound):
    message = "No application with name %(name)s."


class HelmOverrideNotFound(NotFound):
    message = "No helm override with name %(name)s and namespace %(namespace)s"


class HelmOverrideAlreadyExists(Conflict):
    message = "A HelmOverride with name %(name)s and namespace %(namespace)s already exists."


class InvalidHelmNamespace(Invalid):
    message = "Invalid helm overrides namespace (%(namespace)s) for chart %(chart)s."


class KubeNotConfigured(SysinvException):
    message = "Kubernetes is not configured. API operations will not be available."


class LifecycleSemanticCheckException(SysinvException):
    message = "Semantic check hook for app failed."


class LifecycleSemanticCheckOpererationBlocked(SysinvException):
    message = "%(op)s is disabled for this version of %(app)s"


class LifecycleMissingInfo(SysinvException):
    message = "Lifecycle hook missing information."
