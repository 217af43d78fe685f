"""What a decision needs of an AdmissionReview's request, whichever reader read it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from portieris_webhook.admission.owners import OwnerRef
from portieris_webhook.admission.workloads import PodSpec

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
"""The operations of admission.k8s.io/v1; anything else is a malformed review."""
CHECKED_OPERATIONS = ("CREATE", "UPDATE")
"""The operations whose object portieris checks; the others are allowed unchecked."""


def request_namespace(own: str | None, of_object: Any) -> str:
    """A request's namespace: its own, else its object's, else "default" (where the API server
    puts an object created without one)."""
    return own or str(of_object or "") or "default"


def request_name(own: str | None, name: Any, generate_name: Any) -> str:
    """A request's name: its own, else its object's, else the object's generateName prefix
    (the API server names it after admission), else ""."""
    return own or str(name or generate_name or "")


class AdmissionRequest(NamedTuple):
    """What a decision needs of an AdmissionReview's request (a NamedTuple: one is made
    for every admission, and it is built several times faster than a frozen dataclass)."""

    uid: str
    group: str
    version: str
    kind: str
    namespace: str
    name: str
    operation: str
    object: Mapping[str, Any] | None
    owners: tuple[OwnerRef, ...] = ()
    sub_resource: str = ""
    spec: PodSpec | None = None
    """The pod spec of the object of a checked operation (CHECKED_OPERATIONS), as both
    readers read it with the review; None when the operation is not checked, or when the
    object cannot be checked (`uncheckable` says why)."""
    uncheckable: str = ""
    """Why a well-formed object of a checked operation cannot be checked (a kind portieris
    does not know, a container without an image): it is denied with this reason. A
    malformed one never becomes a request: the readers raise InvalidAdmissionReview."""

    @property
    def display_name(self) -> str:
        return f"{self.kind}/{self.name or '<generated>'}"
