"""Model references parse into the right endpoint, and bad ones fail before any request."""

import pytest

from replicate_async.protocol.refs import deployment_target, model_target, parse_ref, version_target

VID = "39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"


@pytest.mark.parametrize(
    ("ref", "path", "body"),
    [
        ("stability-ai/sdxl", "/models/stability-ai/sdxl/predictions", {}),
        ("meta/meta-llama-3-8b-instruct", "/models/meta/meta-llama-3-8b-instruct/predictions", {}),
        (f"stability-ai/sdxl:{VID}", "/predictions", {"version": VID}),
        (VID, "/predictions", {"version": VID}),
        ("  owner/name  ", "/models/owner/name/predictions", {}),
        ("o_1/n.a-me", "/models/o_1/n.a-me/predictions", {}),
    ],
)
def test_parse_ref(ref: str, path: str, body: dict[str, str]) -> None:
    target = parse_ref(ref)
    assert target.path == path
    assert target.body == body


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "sdxl",
        "owner/",
        "/name",
        "a/b/c",
        "owner/name:",
        "owner name/x",
        "owner/na me",
        ":abc",
        "owner/name:ab cd",
        "abc123",
    ],
)
def test_malformed_refs_are_value_errors_that_name_the_forms(ref: str) -> None:
    with pytest.raises(ValueError, match="owner/name") as info:
        parse_ref(ref)
    assert repr(ref) in str(info.value) or ref == ""


def test_non_string_ref_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        parse_ref(42)  # type: ignore[arg-type]


def test_version_and_model_and_deployment_targets() -> None:
    assert version_target(VID).body == {"version": VID}
    assert version_target(f"a/b:{VID}").body == {"version": VID}
    assert model_target("a/b").path == "/models/a/b/predictions"
    assert deployment_target("acme/app").path == "/deployments/acme/app/predictions"
    with pytest.raises(ValueError, match="deployment"):
        deployment_target("nope")
