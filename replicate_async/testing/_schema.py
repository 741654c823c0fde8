"""What an emulator model declares (inputs, output) and the Cog schema it publishes. No HTTP.

A model's version on Replicate carries the OpenAPI schema Cog generated from its
``predict()`` signature: ``components.schemas.Input`` (one property per input, with
``title``, ``type``, ``format: uri`` for files, ``default``, ``minimum``/``maximum``,
``x-order``, a separate enum component per choice list), ``Output`` (``x-cog-array-type:
iterator`` for iterators, ``x-cog-array-display: concatenate`` for text meant to be
joined), and the fixed components and paths of Cog's HTTP server. Clients read it (the
official ones decide how to decode outputs from it), so the emulator publishes the
same shapes, derived from what a model declares when it is registered.

Declarations mirror Cog's: ``Input(int, ge=1, le=4, default=1)``, ``Input(Path)``,
``Input(str, choices=["a", "b"])``; outputs are types: ``str``, ``Path``,
``list[Path]``, ``Iterator[str]``, ``ConcatenateIterator[str]``, or a dict of name to
type for an object output.
"""

from __future__ import annotations

import collections.abc
import json
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import attrs

__all__ = [
    "REQUIRED",
    "ConcatenateIterator",
    "Input",
    "InputProblem",
    "OutputKind",
    "cog_schema",
    "declared_inputs",
    "json_type",
    "output_kind",
    "validate_input",
]

T = TypeVar("T")

#: the default of an input that has none: it must be given
REQUIRED: Any = ...


class ConcatenateIterator(Generic[T]):
    """Output marker: text produced piece by piece and shown joined (an LLM's tokens)."""


@attrs.frozen
class Input:
    """One input of an emulator model, as Cog's ``Input()`` declares it."""

    type: Any = str
    default: Any = attrs.field(default=REQUIRED, kw_only=True)
    description: str | None = attrs.field(default=None, kw_only=True)
    ge: float | None = attrs.field(default=None, kw_only=True)
    le: float | None = attrs.field(default=None, kw_only=True)
    min_length: int | None = attrs.field(default=None, kw_only=True)
    max_length: int | None = attrs.field(default=None, kw_only=True)
    choices: Sequence[Any] | None = attrs.field(default=None, kw_only=True)


# The older form, ``{"text": ("string", ...)}``: a JSON type name and a default.
_TYPE_NAMES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "file": Path,
    "any": Any,
}


def declared_inputs(inputs: Mapping[str, Any] | None) -> dict[str, Input] | None:
    """Inputs as :class:`Input`, from either form; None accepts any input unchecked."""
    if inputs is None:
        return None
    result: dict[str, Input] = {}
    for name, value in inputs.items():
        if isinstance(value, Input):
            result[name] = value
        elif isinstance(value, tuple) and len(value) == 2 and value[0] in _TYPE_NAMES:
            result[name] = Input(_TYPE_NAMES[value[0]], default=value[1])
        else:
            raise TypeError(
                f"input {name!r}: declare it as Input(type, ...) or (json_type, default), "
                f"json_type one of {sorted(_TYPE_NAMES)}; got {value!r}"
            )
    return result


# -- JSON Schema of one type ----------------------------------------------------------


def _type_schema(kind: Any) -> dict[str, Any]:
    """The schema of a value of ``kind`` (no title: callers add their own)."""
    origin = typing.get_origin(kind)
    if kind is Any or kind is None or kind is type(None):
        return {}
    if kind is str:
        return {"type": "string"}
    if kind is bool:
        return {"type": "boolean"}
    if kind is int:
        return {"type": "integer"}
    if kind is float:
        return {"type": "number"}
    if kind is Path:
        return {"type": "string", "format": "uri"}
    if kind is dict or origin is dict:
        return {"type": "object"}
    if isinstance(kind, Mapping):  # an object output: field name -> type
        return {
            "type": "object",
            "properties": {
                name: {"title": _title(name), **_type_schema(sub)} for name, sub in kind.items()
            },
            "required": list(kind),
        }
    if origin in (list, collections.abc.Sequence, Sequence):
        (item,) = typing.get_args(kind) or (Any,)
        return {"type": "array", "items": _type_schema(item)}
    if kind is list:
        return {"type": "array", "items": {}}
    if origin in (collections.abc.Iterator, collections.abc.AsyncIterator):
        (item,) = typing.get_args(kind) or (Any,)
        return {"type": "array", "items": _type_schema(item), "x-cog-array-type": "iterator"}
    if origin is ConcatenateIterator:
        return {
            "type": "array",
            "items": {"type": "string"},
            "x-cog-array-type": "iterator",
            "x-cog-array-display": "concatenate",
        }
    raise TypeError(
        f"unsupported type {kind!r}: use str, int, float, bool, Path, list[...], "
        "Iterator[...], ConcatenateIterator[str], Any, or a dict of name to type"
    )


def _title(name: str) -> str:
    """Cog's titles: ``num_outputs`` -> ``Num Outputs``."""
    return " ".join(part.capitalize() for part in name.split("_") if part) or name


@attrs.frozen
class OutputKind:
    """What a model's output is, for streaming and file decisions."""

    #: text produced piece by piece (a stream of it is a text stream)
    iterator: bool
    #: files somewhere in it (a stream of it is a file stream)
    files: bool


def output_kind(output: Any) -> OutputKind:
    """Whether a declared output is an iterator, and whether it holds files."""
    schema = _type_schema(output)
    return OutputKind(
        iterator=schema.get("x-cog-array-type") == "iterator", files=_has_files(schema)
    )


def _has_files(schema: Mapping[str, Any]) -> bool:
    if schema.get("format") == "uri":
        return True
    items = schema.get("items")
    if isinstance(items, Mapping) and _has_files(items):
        return True
    return any(_has_files(sub) for sub in schema.get("properties", {}).values())


# -- the whole schema --------------------------------------------------------------------

_STATUS = ["starting", "processing", "succeeded", "canceled", "failed"]
_EVENTS = ["start", "output", "logs", "completed"]


def cog_schema(ref: str, inputs: Mapping[str, Input] | None, output: Any) -> dict[str, Any]:
    """The ``openapi_schema`` of a version, as Cog generates it."""
    components: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    enums: dict[str, Any] = {}
    for order, (name, spec) in enumerate((inputs or {}).items()):
        prop: dict[str, Any]
        if spec.choices is not None:
            # Cog puts each choice list in a component of its own, named after the input.
            enums[name] = {
                "enum": list(spec.choices),
                "type": _type_schema(spec.type).get("type", "string"),
                "title": name,
                "description": "An enumeration.",
            }
            prop = {"allOf": [{"$ref": f"#/components/schemas/{name}"}]}
        else:
            prop = {**_type_schema(spec.type), "title": _title(name)}
        if spec.default is REQUIRED:
            required.append(name)
        elif spec.default is not None:
            prop["default"] = spec.default
        if spec.ge is not None:
            prop["minimum"] = spec.ge
        if spec.le is not None:
            prop["maximum"] = spec.le
        if spec.min_length is not None:
            prop["minLength"] = spec.min_length
        if spec.max_length is not None:
            prop["maxLength"] = spec.max_length
        prop["x-order"] = order
        if spec.description is not None:
            prop["description"] = spec.description
        properties[name] = prop
    input_schema: dict[str, Any] = {"type": "object", "title": "Input"}
    if required:
        input_schema["required"] = required
    input_schema["properties"] = properties
    components["Input"] = input_schema
    components["Output"] = {**_type_schema(output), "title": "Output"}
    components["Status"] = _enumeration("Status", _STATUS)
    components.update(enums)
    components["WebhookEvent"] = _enumeration("WebhookEvent", _EVENTS)
    components["ValidationError"] = {
        "type": "object",
        "title": "ValidationError",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {
                "type": "array",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "title": "Location",
            },
            "msg": {"type": "string", "title": "Message"},
            "type": {"type": "string", "title": "Error Type"},
        },
    }
    components["PredictionRequest"] = {
        "type": "object",
        "title": "PredictionRequest",
        "properties": {
            "id": {"type": "string", "title": "Id"},
            "input": {"$ref": "#/components/schemas/Input"},
            "webhook": {
                "type": "string",
                "title": "Webhook",
                "format": "uri",
                "maxLength": 65536,
                "minLength": 1,
            },
            "created_at": {"type": "string", "title": "Created At", "format": "date-time"},
            "output_file_prefix": {"type": "string", "title": "Output File Prefix"},
            "webhook_events_filter": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/WebhookEvent"},
                "default": list(_EVENTS),
            },
        },
    }
    components["PredictionResponse"] = {
        "type": "object",
        "title": "PredictionResponse",
        "properties": {
            "id": {"type": "string", "title": "Id"},
            "logs": {"type": "string", "title": "Logs", "default": ""},
            "error": {"type": "string", "title": "Error"},
            "input": {"$ref": "#/components/schemas/Input"},
            "output": {"$ref": "#/components/schemas/Output"},
            "status": {"$ref": "#/components/schemas/Status"},
            "metrics": {"type": "object", "title": "Metrics"},
            "version": {"type": "string", "title": "Version"},
            "created_at": {"type": "string", "title": "Created At", "format": "date-time"},
            "started_at": {"type": "string", "title": "Started At", "format": "date-time"},
            "completed_at": {"type": "string", "title": "Completed At", "format": "date-time"},
        },
    }
    components["HTTPValidationError"] = {
        "type": "object",
        "title": "HTTPValidationError",
        "properties": {
            "detail": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/ValidationError"},
                "title": "Detail",
            }
        },
    }
    return {
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": _COG_PATHS,
        "openapi": "3.0.2",
        "components": {"schemas": components},
    }


def _enumeration(title: str, values: list[str]) -> dict[str, Any]:
    return {"enum": values, "type": "string", "title": title, "description": "An enumeration."}


def _operation(summary: str, operation_id: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": summary,
        "responses": {
            "200": {
                "content": {"application/json": {"schema": schema}},
                "description": "Successful Response",
            }
        },
        "operationId": operation_id,
    }


_PREDICTION = {"$ref": "#/components/schemas/PredictionResponse"}
_INVALID = {
    "422": {
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
        },
        "description": "Validation Error",
    }
}
_PREFER = {"in": "header", "name": "prefer", "schema": {"type": "string", "title": "Prefer"}}
_ID = {
    "in": "path",
    "name": "prediction_id",
    "schema": {"type": "string", "title": "Prediction ID"},
    "required": True,
}
_COG_PATHS: dict[str, Any] = {
    "/": {"get": _operation("Root", "root__get", {"title": "Response Root  Get"})},
    "/shutdown": {
        "post": _operation(
            "Start Shutdown",
            "start_shutdown_shutdown_post",
            {"title": "Response Start Shutdown Shutdown Post"},
        )
    },
    "/predictions": {
        "post": {
            **_operation("Predict", "predict_predictions_post", _PREDICTION),
            "description": "Run a single prediction on the model",
            "parameters": [{**_PREFER, "required": False}],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/PredictionRequest"}
                    }
                }
            },
        }
    },
    "/health-check": {
        "get": _operation(
            "Healthcheck",
            "healthcheck_health_check_get",
            {"title": "Response Healthcheck Health Check Get"},
        )
    },
    "/predictions/{prediction_id}": {
        "put": {
            **_operation(
                "Predict Idempotent",
                "predict_idempotent_predictions__prediction_id__put",
                _PREDICTION,
            ),
            "description": "Run a single prediction on the model (idempotent creation).",
            "parameters": [_ID, {**_PREFER, "required": False}],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "allOf": [{"$ref": "#/components/schemas/PredictionRequest"}],
                            "title": "Prediction Request",
                        }
                    }
                },
                "required": True,
            },
        }
    },
    "/predictions/{prediction_id}/cancel": {
        "post": {
            **_operation(
                "Cancel",
                "cancel_predictions__prediction_id__cancel_post",
                {"title": "Response Cancel Predictions  Prediction Id  Cancel Post"},
            ),
            "description": "Cancel a running prediction",
            "parameters": [_ID],
        }
    },
}
for _path in _COG_PATHS.values():
    for _op in _path.values():
        if _op["operationId"].startswith(("predict", "cancel")):
            _op["responses"].update(_INVALID)


# -- validation, worded as Replicate words it ---------------------------------------------


@attrs.frozen
class InputProblem:
    """One reason an input was refused: the field, what is wrong, and its kind."""

    field: str
    description: str
    kind: str


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value, as validators name them."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _matches(schema: Mapping[str, Any], value: Any) -> bool:
    wanted = schema.get("type")
    if wanted is None:
        return True
    given = json_type(value)
    return given == wanted or (wanted == "number" and given == "integer")


def validate_input(
    inputs: Mapping[str, Input] | None, data: Any
) -> tuple[dict[str, Any], list[InputProblem]]:
    """Check ``data`` against the declared inputs: (with defaults filled, problems).

    As Replicate's validator (gojsonschema's rules and English words) reports them:
    every missing required input first, then each input in declaration order; a value
    of the wrong type is reported for its type alone; inputs not declared pass through
    to the model, as Replicate passes them.
    """
    if not isinstance(data, dict):
        given = json_type(data)
        return {}, [
            InputProblem("input", f"Invalid type. Expected: object, given: {given}", "invalid_type")
        ]
    result = dict(data)
    if inputs is None:
        return result, []
    problems = [
        InputProblem("input", f"{name} is required", "required")
        for name, spec in inputs.items()
        if name not in data and spec.default is REQUIRED
    ]
    for name, spec in inputs.items():
        if name not in data:
            if spec.default is not REQUIRED:
                result[name] = spec.default  # None too: the model reads an optional input
            continue
        problems.extend(_check(f"input.{name}", name, spec, data[name]))
    return result, problems


def _check(field: str, name: str, spec: Input, value: Any) -> list[InputProblem]:
    schema = _type_schema(spec.type)
    if not _matches(schema, value):
        given = json_type(value)
        return [
            InputProblem(
                field, f"Invalid type. Expected: {schema['type']}, given: {given}", "invalid_type"
            )
        ]
    found: list[InputProblem] = []
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # gojsonschema's order for a number: maximum, then minimum, then enum.
        if spec.le is not None and value > spec.le:
            found.append(
                InputProblem(
                    field, f"Must be less than or equal to {_number(spec.le)}", "number_lte"
                )
            )
        if spec.ge is not None and value < spec.ge:
            found.append(
                InputProblem(
                    field, f"Must be greater than or equal to {_number(spec.ge)}", "number_gte"
                )
            )
    if spec.choices is not None and value not in spec.choices:
        allowed = ", ".join(json.dumps(c) for c in spec.choices)
        found.append(InputProblem(field, f"{name} must be one of the following: {allowed}", "enum"))
    if isinstance(value, str):
        if spec.min_length is not None and len(value) < spec.min_length:
            found.append(
                InputProblem(
                    field,
                    f"String length must be greater than or equal to {spec.min_length}",
                    "string_gte",
                )
            )
        if spec.max_length is not None and len(value) > spec.max_length:
            found.append(
                InputProblem(
                    field,
                    f"String length must be less than or equal to {spec.max_length}",
                    "string_lte",
                )
            )
    return found


def _number(value: float) -> str:
    """How the Go validator prints a bound (``%g`` with 10 digits): 4, 0.5, 1e+10."""
    return format(value, ".10g")


#: the request bodies of the create endpoints: each top-level key and its JSON type
CREATE_BODIES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "version": (
        {
            "version": "string",
            "input": "object",
            "stream": "boolean",
            "webhook": "string",
            "webhook_events_filter": "array",
            # Legacy, still sent by the official Python client when asked for it.
            "webhook_completed": "string",
        },
        ("version", "input"),
    ),
    "model": (
        {
            "input": "object",
            "stream": "boolean",
            "webhook": "string",
            "webhook_events_filter": "array",
            "webhook_completed": "string",
        },
        ("input",),
    ),
    "training": (
        {
            "destination": "string",
            "input": "object",
            "webhook": "string",
            "webhook_events_filter": "array",
            "webhook_completed": "string",
        },
        ("destination", "input"),
    ),
}


def validate_body(kind: str, body: Mapping[str, Any]) -> list[InputProblem]:
    """The first pass of a create: the request body's own keys, as Replicate checks them.

    Unknown top-level keys are refused (only keys inside ``input`` pass freely), required
    ones must be there, each with its JSON type; ``webhook_events_filter`` items must be
    event names.
    """
    properties, required = CREATE_BODIES[kind]
    problems = [
        InputProblem("", f"{key} is required", "required") for key in required if key not in body
    ]
    problems.extend(
        InputProblem(
            "", f"Additional property {key} is not allowed", "additional_property_not_allowed"
        )
        for key in body
        if key not in properties
    )
    for key, wanted in properties.items():
        if key not in body:
            continue
        given = json_type(body[key])
        if given != wanted:
            problems.append(
                InputProblem(
                    key, f"Invalid type. Expected: {wanted}, given: {given}", "invalid_type"
                )
            )
        elif key == "webhook_events_filter":
            allowed = ", ".join(json.dumps(e) for e in _EVENTS)
            problems.extend(
                InputProblem(
                    f"{key}.{i}", f"{key}.{i} must be one of the following: {allowed}", "enum"
                )
                for i, event in enumerate(body[key])
                if event not in _EVENTS
            )
    return problems
