"""Generated inputs against the HTTPS /admit endpoint, the image reference parser and the
nesting depth every decoder of outside JSON refuses past its limit.

The webhook is served with two rules: `allowed/*` (no checks) and `*` (reject). Whatever
the body, the answer is HTTP 200 with an AdmissionReview or HTTP 400 with a message,
never a 500; and an allow only ever admits images under docker.io/allowed/.

`make test` runs a bounded number of examples; PORTIERIS_FUZZ_SCALE=N multiplies them
(bench/fuzz.py runs a long campaign that way).
"""

import base64
import json
import os
import string

import aiohttp
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from portieris_webhook.admission.review import OPERATIONS, load_json
from portieris_webhook.cluster.state import Secret
from portieris_webhook.errors import InvalidImageReference, PortierisError
from portieris_webhook.images import parse_image
from portieris_webhook.kits.nesting import MAX_DEPTH as NESTING_LIMIT
from portieris_webhook.registry.credentials import credentials_from_secret
from portieris_webhook.simple.payload import parse_payload
from portieris_webhook.simple.stores import parse_signature_list
from portieris_webhook.trust import persisted
from portieris_webhook.trust.metadata import parse_envelope

from tests.builders import GROUP_OF
from tests.fixtures.webhook import MAX_BODY, serving

SCALE = int(os.environ.get("PORTIERIS_FUZZ_SCALE", "1"))
POD_SPEC_PATHS = {
    ("", "Pod"): ("spec",),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
    **{
        (group, kind): ("spec", "template", "spec")
        for kind, group in GROUP_OF.items()
        if kind not in ("Pod", "CronJob")
    },
}
COVERED = "docker.io/allowed/"
"""The repository prefix the allowing rule `allowed/*` stands for."""


def fuzz(examples):
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --- image references, built from the distribution grammar ------------------------
alnum = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=6)
separator = st.sampled_from([".", "_", "__", "-", "--"])
path_component = st.builds(
    lambda first, rest: first + "".join(s + a for s, a in rest),
    alnum,
    st.lists(st.tuples(separator, alnum), max_size=2),
)
path = st.lists(path_component, min_size=1, max_size=3).map("/".join)
domain_label = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,5}[a-zA-Z0-9])?", fullmatch=True)
domain = st.one_of(
    st.lists(domain_label, min_size=2, max_size=3).map(".".join),
    st.just("localhost"),
    st.sampled_from(["docker.io", "index.docker.io", "[::1]", "registry.local"]),
).flatmap(lambda d: st.sampled_from([d, d + ":5000", d + ":1"]))
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
digest = st.sampled_from(["sha256:" + "a1" * 32, "sha512:" + "0f" * 64])


@st.composite
def references(draw, under=None):
    name = draw(path) if under is None else f"{under}/{draw(path)}"
    if under is None and draw(st.booleans()):
        name = f"{draw(domain)}/{name}"
    return (
        name
        + draw(st.sampled_from(["", ":" + draw(tag)]))
        + draw(st.sampled_from(["", "@" + draw(digest)]))
    )


TRICKY_IMAGES = [
    "docker.io/allowed/x",
    "index.docker.io/allowed/x:1",
    "allowed.evil.com/x",
    "allowed:5000/x",
    "allowedx/y",
    "evil/allowed/x",
    "localhost/allowed/x",
    " allowed/x",
    "allowed/x ",
    "allowed/x\n",
    "allowed//x",
    "allowed/X",
    "Allowed/x",
    "allowed",
    "allowed/",
    "allowed/x/../y",
    "allowed/\u0430pp",
    "allowed/x\x00",
    "allowed/x:" + "t" * 129,
    "allowed/x@sha256:" + "A" * 64,
    "allowed/x@md5:" + "a" * 32,
    "",
]
images = st.one_of(
    references(under="allowed"),
    references(),
    st.sampled_from(TRICKY_IMAGES),
    st.text(max_size=30),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
names = st.one_of(
    st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True), st.text(max_size=20)
)


@st.composite
def containers(draw):
    item = {"name": draw(names), "image": draw(images)}
    if draw(st.integers(0, 9)) == 0:
        item["image"] = draw(json_values)
    if draw(st.booleans()):
        item["env"] = [{"name": draw(names), "value": draw(st.text(max_size=10))}]
    return item


@st.composite
def pod_specs(draw):
    spec = {"containers": draw(st.lists(containers(), max_size=3))}
    for field in ("initContainers", "ephemeralContainers"):
        if draw(st.booleans()):
            spec[field] = draw(st.lists(containers(), max_size=2))
    if draw(st.booleans()):
        spec["volumes"] = [
            {"name": draw(names), "image": {"reference": draw(images), "pullPolicy": "Always"}}
        ]
    if draw(st.booleans()):
        spec["imagePullSecrets"] = draw(
            st.one_of(st.lists(st.fixed_dictionaries({"name": names}), max_size=2), json_values)
        )
    if draw(st.booleans()):
        spec["serviceAccountName"] = draw(st.one_of(names, json_values))
    return spec


@st.composite
def reviews(draw):
    kind = draw(st.sampled_from(sorted(GROUP_OF)))
    group = GROUP_OF[kind]
    spec = draw(pod_specs())
    obj = {
        "apiVersion": f"{group}/v1" if group else "v1",
        "kind": kind,
        "metadata": {"name": draw(names), "namespace": draw(names)},
    }
    holder = obj
    for key in POD_SPEC_PATHS[(group, kind)][:-1]:
        holder = holder.setdefault(key, {})
    holder["spec"] = spec
    if draw(st.integers(0, 4)) == 0:
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u"}
        obj["metadata"]["ownerReferences"] = [owner]
    request = {
        "uid": draw(st.text(min_size=1, max_size=12)),
        "kind": {"group": group, "version": "v1", "kind": kind},
        "namespace": obj["metadata"]["namespace"],
        "name": obj["metadata"]["name"],
        "operation": draw(st.one_of(st.sampled_from(OPERATIONS), st.text(max_size=8))),
        "object": obj,
    }
    if draw(st.booleans()):
        request["dryRun"] = draw(st.booleans())
    if draw(st.integers(0, 5)) == 0:  # replace one field of the request with anything
        key = draw(st.sampled_from(sorted(request)))
        request[key] = draw(json_values)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


# --- the oracle: what an allow may admit -------------------------------------------
class Malformed(Exception):
    pass


def _list_at(spec, field):
    value = spec.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
        raise Malformed(field)
    return value


def images_run_by(document):
    """Every image the pod spec of a (known kind of) request names; Malformed if unclear."""
    request = document["request"]
    gvk = request.get("kind")
    if not isinstance(gvk, dict) or gvk.get("version") != "v1":
        return None
    spec_path = POD_SPEC_PATHS.get((gvk.get("group"), gvk.get("kind")))
    if spec_path is None:
        return None
    spec = request.get("object")
    for key in spec_path:
        if not isinstance(spec, dict):
            raise Malformed(key)
        spec = spec.get(key)
    if not isinstance(spec, dict):
        raise Malformed("spec")
    found = []
    for field in ("initContainers", "containers", "ephemeralContainers"):
        found += [c.get("image") for c in _list_at(spec, field)]
    for volume in _list_at(spec, "volumes"):
        source = volume.get("image")
        if source is not None:
            if not isinstance(source, dict):
                raise Malformed("volumes[].image")
            found.append(source.get("reference"))
    return found


def covered(image):
    if not isinstance(image, str):
        return False
    try:
        return parse_image(image).repository.startswith(COVERED)
    except InvalidImageReference:
        return False


def assert_allow_is_justified(document):
    request = document["request"]
    if request.get("operation") in ("DELETE", "CONNECT"):
        return
    try:
        found = images_run_by(document)
    except Malformed as exc:
        raise AssertionError(f"allowed although {exc} is malformed") from exc
    if found is not None:
        assert all(covered(image) for image in found), found


# --- the properties --------------------------------------------------------------------
@pytest.fixture
async def webhook(tmp_path):
    async with serving(tmp_path) as served:
        connector = aiohttp.TCPConnector(ssl=served.client_context())
        async with aiohttp.ClientSession(connector=connector) as session:
            yield served, session


async def answer(webhook, body):
    served, session = webhook
    async with session.post(f"{served.url}/admit", data=body) as resp:
        assert resp.status in (200, 400), (resp.status, await resp.text())
        assert resp.content_type == "application/json"
        return resp.status, json.loads(await resp.read())


def assert_well_formed(status, answer, uid=None):
    if status == 400:
        assert isinstance(answer["error"], str) and answer["error"]
        return None
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert isinstance(response["allowed"], bool)
    if uid is not None:
        assert response["uid"] == uid
    if "patch" in response:
        operations = json.loads(base64.b64decode(response["patch"]))
        assert all(op["op"] == "replace" and op["path"].endswith("/image") for op in operations)
    if not response["allowed"]:
        assert response["status"]["code"] == 403 and response["status"]["message"]
    return response


def pod_review(spec):
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "default",
            "name": "p",
            "operation": "CREATE",
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec},
        },
    }


@fuzz(200)
@given(document=reviews())
# Found by this test: a host written with capitals is not the Docker Hub namespace
# `allowed` that the rule `allowed/*` names.
@example(document=pod_review({"containers": [{"name": "c", "image": "Allowed/x"}]}))
# Found by this test: an image volume runs an image too (issue 8 item 3).
@example(
    document=pod_review(
        {
            "containers": [{"name": "c", "image": "allowed/x"}],
            "volumes": [{"name": "v", "image": {"reference": "evil.com/x"}}],
        }
    )
)
async def test_generated_reviews_never_get_a_500_nor_an_unjustified_allow(webhook, document):
    status, body = await answer(webhook, json.dumps(document))
    uid = document["request"].get("uid")
    response = assert_well_formed(status, body, uid if status == 200 else None)
    event("HTTP 400" if response is None else f"allowed={response['allowed']}")
    if response is not None and response["allowed"]:
        assert_allow_is_justified(document)


@fuzz(100)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.integers(1, MAX_BODY // 2).map(lambda depth: b"[" * depth + b"]" * depth),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )
)
async def test_arbitrary_bodies_get_400_never_500(webhook, body):
    status, answer_ = await answer(webhook, body)
    assert status == 400 and answer_["error"]


# --- the image parser --------------------------------------------------------------------
@fuzz(500)
@given(text=st.one_of(st.text(max_size=80), images, references().map(lambda r: r + "!")))
def test_parsing_any_text_raises_only_invalid_image_reference(text):
    try:
        reference = parse_image(text)
    except InvalidImageReference as exc:
        assert str(exc)
    else:
        assert str(reference) == text


@fuzz(500)
@given(text=references())
def test_valid_references_parse_and_normalisation_round_trips(text):
    reference = parse_image(text)
    again = parse_image(reference.normalised)
    assert again.normalised == reference.normalised
    assert (again.repository, again.digest) == (reference.repository, reference.digest)
    assert again.effective_tag == reference.effective_tag
    assert parse_image(reference.repository).repository == reference.repository
    pinned = parse_image(reference.pinned("sha256:" + "b2" * 32))
    assert pinned.repository == reference.repository and pinned.digest == "sha256:" + "b2" * 32
    assert pinned.tag is None


# --- nesting depth, for every decoder of outside input -----------------------------------
def _nested(depth: int, kinds: str, inner: str) -> bytes:
    """`inner` inside `depth` levels of arrays and objects, in the order `kinds` repeats."""
    opening = "".join("[" if kinds[i % len(kinds)] == "[" else '{"k":' for i in range(depth))
    closing = "".join("]" if kinds[i % len(kinds)] == "[" else "}" for i in reversed(range(depth)))
    return (opening + inner + closing).encode()


def _decode_docker_config(data: bytes) -> object:
    secret = Secret("ns", "pull", "kubernetes.io/dockerconfigjson", {".dockerconfigjson": data})
    return credentials_from_secret(secret)


DECODERS = {
    "admission review": load_json,
    "notary metadata": lambda data: parse_envelope(data, "targets"),
    "trust state": lambda data: persisted.decode(data.decode()),
    "simple signing payload": parse_payload,
    "signature list": lambda data: parse_signature_list(data, "https://reg.io/x"),
    "docker config": _decode_docker_config,
}


@fuzz(60)
@pytest.mark.parametrize("decoder", DECODERS.values(), ids=DECODERS.keys())
@given(
    depth=st.one_of(
        st.integers(NESTING_LIMIT - 3, NESTING_LIMIT + 3), st.integers(0, 200), st.just(5000)
    ),
    kinds=st.sampled_from(["[", "{", "[{", "{[[", "{{["]),
    inner=st.sampled_from(['"x"', "1", "[]", "{}", '"]]]}}}"', '"\\\\\\"[["']),
    closed=st.booleans(),
)
def test_every_decoder_refuses_deep_nesting_with_its_own_error_never_a_recursion_error(
    decoder, depth, kinds, inner, closed
):
    data = _nested(depth, kinds, inner)
    if not closed:  # what no decoder should recurse into either: the brackets never close
        data = data[: len(data) - depth]
    try:
        decoder(data)
    except PortierisError as exc:
        event(type(exc).__name__)
        if depth > NESTING_LIMIT:
            assert f"nested deeper than {NESTING_LIMIT} levels" in str(exc)
    else:
        assert depth <= NESTING_LIMIT, "a document nested deeper than the limit was read"
