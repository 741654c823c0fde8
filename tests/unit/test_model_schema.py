"""ModelSchema against the recorded schemas (sdxl, llama-2-70b-chat) and made-up ones."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from replicate_async.files import looks_like_file
from replicate_async.protocol.schema import ModelSchema, OutputPlan, resolve
from tests.conftest import PAYLOADS


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / "recorded" / name).read_text())
    return data["openapi_schema"]


@pytest.fixture(scope="module")
def sdxl() -> ModelSchema:
    return ModelSchema(recorded("version.get.200.sdxl.json"), label="stability-ai/sdxl")


@pytest.fixture(scope="module")
def llama() -> ModelSchema:
    return ModelSchema(recorded("version.get.200.llama-2-70b-chat.json"), label="meta/llama")


def problems(schema: ModelSchema, inputs: dict[str, Any]) -> dict[str, str]:
    return {p.field: p.message for p in schema.check(inputs, looks_like_file)}


def test_a_good_input_passes(sdxl: ModelSchema, llama: ModelSchema) -> None:
    assert problems(sdxl, {"prompt": "a corgi", "width": 768, "scheduler": "DDIM"}) == {}
    assert problems(sdxl, {}) == {}  # nothing is required in sdxl
    assert problems(llama, {"prompt": "hi", "temperature": 0.5, "debug": True}) == {}


def test_every_kind_of_bad_field_is_named_at_once(sdxl: ModelSchema) -> None:
    found = problems(
        sdxl,
        {
            "promt": "a corgi",  # misspelled
            "width": "wide",  # wrong type
            "num_outputs": 9,  # over the maximum
            "guidance_scale": 0,  # under the minimum
            "scheduler": "FAST",  # not in the enum
            "refine": "no_refiner",  # fine: an enum through allOf/$ref
            "apply_watermark": "yes",  # a string for a boolean
        },
    )
    assert set(found) == {
        "promt",
        "width",
        "num_outputs",
        "guidance_scale",
        "scheduler",
        "apply_watermark",
    }
    assert "did you mean 'prompt'?" in found["promt"]
    assert found["width"] == '"wide" is not allowed: it takes an integer'
    assert found["num_outputs"] == "9 is not allowed: it takes an integer from 1 to 4"
    assert "from 1 to 50" in found["guidance_scale"]
    assert '"DDIM"' in found["scheduler"] and '"K_EULER"' in found["scheduler"]
    assert found["apply_watermark"].endswith("takes true or false")


def test_missing_required_fields_are_named(llama: ModelSchema) -> None:
    assert problems(llama, {"temperature": 0.5}) == {"prompt": "required: text"}
    # None counts as not given, for an optional field and a required one alike.
    assert problems(llama, {"prompt": None, "seed": None}) == {"prompt": "required: text"}


def test_files_are_fine_where_a_field_takes_one_and_refused_elsewhere(
    sdxl: ModelSchema, tmp_path: Path
) -> None:
    image = tmp_path / "in.png"
    image.write_bytes(b"png")
    assert problems(sdxl, {"image": image, "mask": b"bytes", "prompt": "x"}) == {}
    assert problems(sdxl, {"image": io.BytesIO(b"x")}) == {}
    assert problems(sdxl, {"image": "https://example.com/in.png"}) == {}
    refused = problems(sdxl, {"prompt": image})
    assert refused == {"prompt": "takes text, not a file"}
    assert sdxl.takes_file("image") and not sdxl.takes_file("prompt")


def test_outputs_are_decoded_by_what_the_schema_says(sdxl: ModelSchema, llama: ModelSchema) -> None:
    files: list[str] = []

    def file(url: str) -> str:
        files.append(url)
        return f"FILE({url})"

    plan = sdxl.output_plan()
    assert plan is not None and plan.kind == "list" and plan.items == OutputPlan("file")
    assert plan.decode(["https://r.d/a.png", "https://r.d/b.png"], file) == [
        "FILE(https://r.d/a.png)",
        "FILE(https://r.d/b.png)",
    ]
    # An LLM's text stays text, even a token that looks like a URL.
    text = llama.output_plan()
    assert text is not None and text.kind == "iterator" and text.concatenate
    assert text.decode(["https://example.com", " is a site"], file) == [
        "https://example.com",
        " is a site",
    ]
    assert files == ["https://r.d/a.png", "https://r.d/b.png"]


def test_nested_files_are_decoded_at_their_depth() -> None:
    schema = ModelSchema(
        {
            "components": {
                "schemas": {
                    "Output": {
                        "type": "object",
                        "properties": {
                            "image": {"type": "string", "format": "uri"},
                            "caption": {"type": "string"},
                            "masks": {
                                "type": "array",
                                "items": {"type": "string", "format": "uri"},
                            },
                        },
                    }
                }
            }
        }
    )
    plan = schema.output_plan()
    assert plan is not None
    decoded = plan.decode(
        {"image": "https://x/i.png", "caption": "https://x/not-a-file", "masks": ["https://x/m"]},
        lambda url: ("file", url),
    )
    assert decoded == {
        "image": ("file", "https://x/i.png"),
        "caption": "https://x/not-a-file",
        "masks": [("file", "https://x/m")],
    }


def test_a_version_without_schemas_checks_nothing_and_decodes_as_before() -> None:
    schema = ModelSchema(None, label="x/y")
    assert not schema.known and schema.check({"anything": 1}, looks_like_file) == []
    assert schema.output_plan() is None


def test_refs_are_inlined_and_cycles_do_not_hang() -> None:
    components = {"A": {"$ref": "#/components/schemas/A"}, "E": {"enum": ["x"], "type": "string"}}
    assert resolve({"allOf": [{"$ref": "#/components/schemas/E"}], "default": "x"}, components) == {
        "enum": ["x"],
        "type": "string",
        "default": "x",
    }
    resolve({"$ref": "#/components/schemas/A"}, components)  # ends, whatever it returns


def test_the_signature_reads_like_python(sdxl: ModelSchema, llama: ModelSchema) -> None:
    text = sdxl.signature()
    assert text.startswith("stability-ai/sdxl(")
    assert "    prompt: str = 'An astronaut riding a rainbow unicorn'  # Input prompt" in text
    assert "    num_outputs: int = 1 (1 to 4)  # Number of images to output." in text
    assert "    scheduler: Literal['DDIM', 'DPMSolverMultistep'," in text
    assert "    image: file | None = None  # Input image for img2img or inpaint mode" in text
    assert text.endswith(") -> list[FileOutput]")
    # Inputs in the model's order (x-order), not the schema's key order.
    names = [line.split(":")[0].strip() for line in text.splitlines()[1:-1]]
    assert names[:3] == ["prompt", "negative_prompt", "image"]
    assert llama.signature().endswith(") -> OutputIterator[str] (text, concatenated)")
    assert "    prompt: str  # Prompt to send to the model." in llama.signature()
