"""The typed reader (admission/typed.py) never changes what the field-by-field reader says.

For generated reviews, well-formed and broken in every field either reader looks at, the
typed pass either steps aside (None) or yields exactly the AdmissionRequest and pod spec
that review.parse_review and workloads.pod_spec make of the same document.
"""

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portieris_webhook.admission import review as review_module
from portieris_webhook.admission import typed
from portieris_webhook.admission.review import parse_review
from portieris_webhook.admission.workloads import pod_spec, workload_kind
from portieris_webhook.errors import InvalidAdmissionReview, UncheckableObject

from tests.builders import pod_spec as spec_of
from tests.builders import review, workload

KINDS = ("Pod", "Deployment", "CronJob", "Job", "StatefulSet")
ODD_VALUES = [None, "", 0, 7, True, [], {}, "x", ["a"], {"a": 1}, [None], [{}]]
"""What a generated document may hold instead of a field's proper value."""


def field_paths(document, prefix=()):
    """Every path to a value in `document` (dict keys and list indexes)."""
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from field_paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from field_paths(value, (*prefix, index))


def replaced(document, path, value):
    changed = copy.deepcopy(document)
    if not path:
        return value
    node = changed
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return changed


def slow_read(document):
    """What the field-by-field reader makes of `document`: (request, pod spec or error)."""
    saved = review_module.typed
    review_module.typed = None
    try:
        request = parse_review(document)
    finally:
        review_module.typed = saved
    if request.operation not in ("CREATE", "UPDATE") or request.object is None:
        return request, "not checked"
    try:
        spec = pod_spec(request.object, workload_kind(request.group, request.version, request.kind))
    except (InvalidAdmissionReview, UncheckableObject) as exc:
        return request, repr(exc)
    return request, spec


def base_documents():
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u-1"}
    spec = spec_of("a/b:1", "c@sha256:" + "0" * 64, init=("i:1",), pull_secrets=("s",))
    spec["volumes"] = [{"name": "v", "image": {"reference": "vol:1"}}, {"name": "w"}]
    spec["serviceAccountName"] = "sa"
    for kind in KINDS:
        yield review(workload(kind, spec, namespace="ns", owners=[owner]))
    yield review(workload("Pod", spec), operation="UPDATE")


BASES = list(base_documents())


def agree(document):
    """The typed reader steps aside or agrees with the field-by-field one."""
    read = typed.read(document)
    try:
        slow_request, slow_spec = slow_read(document)
    except InvalidAdmissionReview:
        assert read is None
        return None
    if read is None:
        return None
    request = parse_review(document)
    assert request.spec == slow_spec
    assert request._replace(spec=None) == slow_request._replace(spec=None)
    return request


@pytest.mark.parametrize("document", BASES, ids=lambda d: d["request"]["kind"]["kind"])
def test_a_well_formed_review_is_read_in_one_typed_pass_and_reads_the_same(document):
    request = agree(document)
    assert request is not None and request.spec is not None
    assert [image.image for image in request.spec.images] == [
        "i:1",
        "a/b:1",
        "c@sha256:" + "0" * 64,
        "vol:1",
    ]


@pytest.mark.parametrize("base", range(len(BASES)))
def test_every_field_replaced_by_every_odd_value_reads_the_same_or_steps_aside(base):
    document = BASES[base]
    stepped_aside = 0
    for path in list(field_paths(document)):
        for value in ODD_VALUES:
            if agree(replaced(document, path, value)) is None:
                stepped_aside += 1
    assert stepped_aside > 0  # the broken documents reach the field-by-field reader


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(BASES),
    changes=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(ODD_VALUES)), max_size=3),
)
def test_several_fields_broken_at_once_read_the_same_or_step_aside(base, changes):
    document = base
    for index, value in changes:
        paths = list(field_paths(document))
        document = replaced(document, paths[index % len(paths)], value)
    agree(document)
