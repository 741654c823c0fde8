"""The emulator's model declarations: Cog schemas, and input errors in Replicate's words."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replicate_async.testing import ConcatenateIterator, Input
from replicate_async.testing._catalog import Catalog, CatalogError
from replicate_async.testing._jobs import InputError, ModelSpec
from replicate_async.testing._schema import cog_schema, output_kind, validate_body, validate_input
from replicate_async.testing._wire import jsonb_order

from ..conftest import FIXTURES


def _nothing(input: dict[str, Any], ctx: Any) -> None:
    return None


def test_the_schema_has_cog_s_shape_like_the_recorded_sdxl() -> None:
    recorded = json.loads((FIXTURES / "recorded/version.get.200.sdxl.newer.json").read_text())
    real = recorded["openapi_schema"]
    ours = cog_schema(
        "me/sdxl",
        {
            "prompt": Input(str, default="An astronaut", description="Input prompt"),
            "image": Input(Path, default=None, description="Input image"),
            "num_outputs": Input(int, default=1, ge=1, le=4),
            "scheduler": Input(str, choices=["DDIM", "K_EULER"], default="K_EULER"),
        },
        list[Path],
    )
    assert set(ours) == set(real)
    assert ours["info"] == real["info"]
    assert set(ours["paths"]) == set(real["paths"])
    components = ours["components"]["schemas"]
    real_components = real["components"]["schemas"]
    fixed = {"Status", "WebhookEvent", "ValidationError", "HTTPValidationError"}
    for name in fixed | {"Output"}:
        assert components[name] == real_components[name], name
    assert components["scheduler"] == {
        "enum": ["DDIM", "K_EULER"],
        "type": "string",
        "title": "scheduler",
        "description": "An enumeration.",
    }
    props = components["Input"]["properties"]
    # Each property carries the keys Cog gives it, no more.
    assert props["num_outputs"] == {
        "type": "integer",
        "title": "Num Outputs",
        "default": 1,
        "minimum": 1,
        "maximum": 4,
        "x-order": 2,
    }
    assert props["image"] == {
        "type": "string",
        "format": "uri",
        "title": "Image",
        "x-order": 1,
        "description": "Input image",
    }
    assert props["scheduler"] == {
        "allOf": [{"$ref": "#/components/schemas/scheduler"}],
        "default": "K_EULER",
        "x-order": 3,
    }
    assert "required" not in components["Input"]  # every input has a default


@pytest.mark.parametrize(
    ("output", "schema", "iterator", "files"),
    [
        (str, {"type": "string"}, False, False),
        (Path, {"type": "string", "format": "uri"}, False, True),
        (list[Path], {"type": "array", "items": {"type": "string", "format": "uri"}}, False, True),
        (
            Iterator[str],
            {"type": "array", "items": {"type": "string"}, "x-cog-array-type": "iterator"},
            True,
            False,
        ),
        (
            ConcatenateIterator[str],
            {
                "type": "array",
                "items": {"type": "string"},
                "x-cog-array-type": "iterator",
                "x-cog-array-display": "concatenate",
            },
            True,
            False,
        ),
        (
            {"image": Path, "caption": str},
            {
                "type": "object",
                "properties": {
                    "image": {"title": "Image", "type": "string", "format": "uri"},
                    "caption": {"title": "Caption", "type": "string"},
                },
                "required": ["image", "caption"],
            },
            False,
            True,
        ),
        (Any, {}, False, False),
    ],
)
def test_outputs_as_cog_publishes_them(
    output: Any, schema: dict[str, Any], iterator: bool, files: bool
) -> None:
    published = cog_schema("me/m", None, output)["components"]["schemas"]["Output"]
    assert published == {**schema, "title": "Output"}
    kind = output_kind(output)
    assert (kind.iterator, kind.files) == (iterator, files)


def test_an_unsupported_type_is_refused_when_declared() -> None:
    with pytest.raises(TypeError, match="unsupported type"):
        ModelSpec(owner="me", name="m", fn=_nothing, output=set[int])
    with pytest.raises(TypeError, match=r"Input\(type"):
        ModelSpec(owner="me", name="m", fn=_nothing, inputs={"x": 3})


INPUTS = {
    "prompt": Input(str),
    "steps": Input(int, ge=1, le=4, default=2),
    "scale": Input(float, ge=0.5, default=1.0),
    "style": Input(str, choices=["jpg", "png"], default="png"),
    "name": Input(str, min_length=2, max_length=4, default="ab"),
    "seed": Input(int, default=None),
}


@pytest.mark.parametrize(
    ("data", "problems"),
    [
        ({"prompt": "x"}, []),
        ({"prompt": "x", "extra": 1}, []),  # undeclared inputs pass through, as on Replicate
        ({}, [("input", "prompt is required", "required")]),
        (
            {"prompt": 1},
            [("input.prompt", "Invalid type. Expected: string, given: integer", "invalid_type")],
        ),
        ({"prompt": "x", "steps": 4.0}, []),  # a whole float is an integer to the validator
        (
            {"prompt": "x", "steps": 1.5},
            [("input.steps", "Invalid type. Expected: integer, given: number", "invalid_type")],
        ),
        (
            {"prompt": "x", "steps": True},
            [("input.steps", "Invalid type. Expected: integer, given: boolean", "invalid_type")],
        ),
        (
            {"prompt": "x", "steps": 0, "scale": 0.25},
            [
                ("input.steps", "Must be greater than or equal to 1", "number_gte"),
                ("input.scale", "Must be greater than or equal to 0.5", "number_gte"),
            ],
        ),
        (
            {"prompt": "x", "style": "gif"},
            [("input.style", 'style must be one of the following: "jpg", "png"', "enum")],
        ),
        (
            {"prompt": "x", "name": "toolong"},
            [("input.name", "String length must be less than or equal to 4", "string_lte")],
        ),
        (
            {"prompt": "x", "seed": None},
            [("input.seed", "Invalid type. Expected: integer, given: null", "invalid_type")],
        ),
    ],
)
def test_input_problems_in_replicate_s_words(
    data: dict[str, Any], problems: list[tuple[str, str, str]]
) -> None:
    _, found = validate_input(INPUTS, data)
    assert [(p.field, p.description, p.kind) for p in found] == problems


def test_defaults_are_filled_for_the_model_and_every_problem_is_raised() -> None:
    spec = ModelSpec(owner="me", name="m", fn=_nothing, inputs=INPUTS)
    assert spec.validate({"prompt": "x"}) == {
        "prompt": "x",
        "steps": 2,
        "scale": 1.0,
        "style": "png",
        "name": "ab",
        "seed": None,  # an optional input with no value reaches the model as None
    }
    with pytest.raises(InputError) as info:
        spec.validate({"steps": 9, "style": "gif"})
    assert [p.kind for p in info.value.problems] == ["required", "number_lte", "enum"]


def test_the_older_tuple_declarations_still_work() -> None:
    spec = ModelSpec(owner="me", name="m", fn=_nothing, inputs={"text": ("string", ...)})
    assert spec.openapi_schema()["components"]["schemas"]["Input"]["required"] == ["text"]


def test_create_bodies_are_checked_first() -> None:
    found = validate_body("version", {"model": "x", "input": [], "stream": "yes"})
    assert [(p.field, p.description) for p in found] == [
        ("", "version is required"),
        ("", "Additional property model is not allowed"),
        ("input", "Invalid type. Expected: object, given: array"),
        ("stream", "Invalid type. Expected: boolean, given: string"),
    ]
    bad_events = validate_body("model", {"input": {}, "webhook_events_filter": ["done"]})
    assert bad_events[0].field == "webhook_events_filter.0"


def test_jsonb_order_is_shorter_keys_first() -> None:
    assert list(jsonb_order({"title": 1, "type": 2, "x-order": 3, "format": 4})) == [
        "type",
        "title",
        "format",
        "x-order",
    ]


def test_the_catalog_refuses_what_replicate_refuses() -> None:
    catalog = Catalog(username="me")
    made = catalog.create_model(
        {"owner": "me", "name": "m", "visibility": "private", "hardware": "cpu"}
    )
    assert (made.ref, made.versions) == ("me/m", [])
    cases = [
        ({"owner": "me", "name": "m", "visibility": "private", "hardware": "cpu"}, 409),
        ({"owner": "you", "name": "x", "visibility": "private", "hardware": "cpu"}, 403),
        ({"owner": "me", "name": "x", "visibility": "hidden", "hardware": "cpu"}, 400),
        ({"owner": "me", "name": "x", "visibility": "private", "hardware": "tpu"}, 400),
        ({"owner": "me", "name": "x"}, 422),
    ]
    for body, status in cases:
        with pytest.raises(CatalogError) as info:
            catalog.create_model(body)
        assert info.value.status == status, body
    catalog.add_version(ModelSpec(owner="me", name="m", fn=_nothing))
    with pytest.raises(CatalogError, match="with versions"):
        catalog.delete_model("me/m")
    version = catalog.latest("me/m")
    assert version is not None
    catalog.create_deployment(
        {
            "name": "d",
            "model": "me/m",
            "version": version.version,
            "hardware": "cpu",
            "min_instances": 0,
            "max_instances": 1,
        }
    )
    with pytest.raises(CatalogError, match="used by a deployment"):
        catalog.delete_version("me/m", version.version)
    with pytest.raises(CatalogError) as too_many:
        catalog.update_deployment("me/d", {"max_instances": 21})
    assert too_many.value.status == 422
    assert catalog.update_deployment("me/d", {"max_instances": 3}).release == 2
