"""A model version's schema, sans I/O: inputs checked before a create, outputs decoded by type.

Every version carries an OpenAPI document whose ``components.schemas`` hold ``Input``
(an object schema: one property per input, ``x-order`` for their order, enums as
``allOf: [{$ref: ...}]``) and ``Output``. :class:`ModelSchema` reads it once:

- :meth:`ModelSchema.check` lists every problem of an input at once (unknown fields,
  with a guess at the one meant; missing required ones; values that break a field's
  schema, checked by a compiled JSON Schema validator; files where the field takes no
  file) so that a bad input costs no request;
- :meth:`ModelSchema.output_plan` says how to decode the output: ``format: uri`` strings
  (alone, in arrays, in objects at any depth) are files, every other string stays a
  string, and ``x-cog-array-type: iterator`` arrays arrive item by item (joined as text
  with ``x-cog-array-display: concatenate``);
- :meth:`ModelSchema.signature` writes the inputs for people.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import fastjsonschema

__all__ = ["InputProblem", "ModelSchema", "OutputPlan"]

#: nesting past which a schema is not followed (a cycle of $refs, or an absurd document)
_MAX_DEPTH = 32
#: the rules :func:`describe` tells in words (others get the validator's own)
_DESCRIBED = frozenset(
    {"type", "enum", "minimum", "maximum", "format", "exclusiveMinimum", "exclusiveMaximum"}
)
#: what stands in for a file where a field takes one (the upload's URL comes later)
_FILE_STAND_IN = "https://example.invalid/file"


@attrs.frozen
class InputProblem:
    """One thing wrong with one input field."""

    field: str
    message: str


@attrs.frozen
class OutputPlan:
    """How to decode an output: what ``kind`` of value, and of its parts.

    ``file``: a URL to wrap as a file; ``value``: kept as it is (strings stay strings);
    ``list``: ``items`` each decoded; ``iterator``: the same, produced item by item
    (``concatenate``: the items make one text); ``object``: ``fields`` decoded by name.
    """

    kind: str
    items: OutputPlan | None = None
    fields: Mapping[str, OutputPlan] | None = None
    concatenate: bool = False
    #: for ``value``: its Python type, for people (``str``, ``int``, ``dict`` ...)
    type_name: str = "Any"

    @property
    def has_files(self) -> bool:
        """Whether any part of the output is a file."""
        if self.kind == "file":
            return True
        if self.items is not None and self.items.has_files:
            return True
        return any(plan.has_files for plan in (self.fields or {}).values())

    def decode(self, value: Any, file: Callable[[str], Any]) -> Any:
        """``value`` with every file in it made by ``file(url)``; the rest untouched."""
        if value is None or not self.has_files:
            return value
        if self.kind == "file":
            return file(value) if isinstance(value, str) else value
        if self.items is not None and isinstance(value, list):
            return [self.items.decode(item, file) for item in value]
        if self.fields is not None and isinstance(value, dict):
            return {
                key: (self.fields[key].decode(item, file) if key in self.fields else item)
                for key, item in value.items()
            }
        return value


VALUE = OutputPlan("value")


def resolve(schema: Any, components: Mapping[str, Any], depth: int = 0) -> Any:
    """``schema`` with its ``$ref``s to ``#/components/schemas/...`` inlined.

    Cog writes an enum input as ``{"allOf": [{"$ref": ...}], "default": ...}``: the
    referenced schema is merged in, so that each field's schema stands alone.
    """
    if depth > _MAX_DEPTH:
        return {}
    if isinstance(schema, list):
        return [resolve(item, components, depth + 1) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        target = components.get(ref.rsplit("/", 1)[-1], {})
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return {**resolve(target, components, depth + 1), **resolve(rest, components, depth + 1)}
    resolved = {key: resolve(value, components, depth + 1) for key, value in schema.items()}
    parts = resolved.get("allOf")
    if isinstance(parts, list) and len(parts) == 1 and isinstance(parts[0], dict):
        merged = {**parts[0], **{k: v for k, v in resolved.items() if k != "allOf"}}
        return merged
    return resolved


def _takes_file(schema: Mapping[str, Any]) -> bool:
    if schema.get("format") == "uri":
        return True
    items = schema.get("items")
    return schema.get("type") == "array" and isinstance(items, dict) and _takes_file(items)


def python_type(schema: Mapping[str, Any]) -> str:
    """A field's type written as Python: ``int``, ``Literal['a', 'b']``, ``list[file]``."""
    if "enum" in schema:
        return "Literal[" + ", ".join(repr(v) for v in schema["enum"]) + "]"
    if schema.get("format") == "uri":
        return "file"
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        return f"list[{python_type(items) if isinstance(items, dict) else 'Any'}]"
    return {
        "string": "str",
        "integer": "int",
        "number": "float",
        "boolean": "bool",
        "object": "dict",
    }.get(str(kind), "Any")


def _bounds(schema: Mapping[str, Any]) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f" ({low:g} to {high:g})"
    if low is not None:
        return f" (>= {low:g})"
    if high is not None:
        return f" (<= {high:g})"
    return ""


def describe(schema: Mapping[str, Any]) -> str:
    """What a field takes, in a few words: ``an integer from 1 to 4``, ``one of 'a', 'b'``."""
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type")
    if schema.get("format") == "uri":
        words = "a file (a path, bytes, a file object or a URL)"
    elif kind == "array":
        items = schema.get("items")
        inner = describe(items) if isinstance(items, dict) else "anything"
        words = f"a list of {inner.removeprefix('a ').removeprefix('an ')}"
    else:
        words = {
            "integer": "an integer",
            "number": "a number",
            "string": "text",
            "boolean": "true or false",
            "object": "an object",
        }.get(str(kind), "any value")
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        words += f" from {low:g} to {high:g}"
    elif low is not None:
        words += f" of at least {low:g}"
    elif high is not None:
        words += f" of at most {high:g}"
    if schema.get("minLength") or schema.get("maxLength"):
        words += f" ({schema.get('minLength', 0)} to {schema.get('maxLength', 'any')} characters)"
    return words


class ModelSchema:
    """The inputs and output of one model version, from its OpenAPI document."""

    __slots__ = ("_names", "_validators", "fields", "input", "label", "output", "required")

    def __init__(self, openapi: Mapping[str, Any] | None, *, label: str = "this model") -> None:
        self.label = label
        components: Mapping[str, Any] = {}
        if isinstance(openapi, Mapping):
            found = openapi.get("components", {})
            if isinstance(found, Mapping):
                schemas = found.get("schemas", {})
                components = schemas if isinstance(schemas, Mapping) else {}
        raw_input = components.get("Input")
        self.input: dict[str, Any] | None = (
            resolve(raw_input, components) if isinstance(raw_input, dict) else None
        )
        raw_output = components.get("Output")
        self.output: dict[str, Any] | None = (
            resolve(raw_output, components) if isinstance(raw_output, dict) else None
        )
        properties = (self.input or {}).get("properties") or {}
        ordered = sorted(
            properties.items(),
            key=lambda item: (item[1].get("x-order", 1 << 30), item[0]),
        )
        #: the inputs, in the model's order: name to its (resolved) schema
        self.fields: dict[str, dict[str, Any]] = dict(ordered)
        self.required: tuple[str, ...] = tuple((self.input or {}).get("required") or ())
        self._names = ", ".join(self.fields) or "none"
        self._validators: dict[str, Callable[[Any], Any] | None] = {}

    @property
    def known(self) -> bool:
        """Whether the version publishes an ``Input`` schema to check against."""
        return self.input is not None

    def takes_file(self, name: str) -> bool:
        """Whether input ``name`` takes a file (``format: uri``, or a list of them)."""
        schema = self.fields.get(name)
        return schema is not None and _takes_file(schema)

    # -- inputs ----------------------------------------------------------------------

    def check(
        self, inputs: Mapping[str, Any], is_file: Callable[[Any], bool]
    ) -> list[InputProblem]:
        """Every problem of ``inputs``, in the model's field order (empty: it is fine).

        ``is_file(value)`` says whether a value is a local file the client will upload
        (a path, bytes, a file object): fine where a field takes a file, wrong elsewhere.
        """
        if self.input is None:
            return []
        # The fast path: the whole input at once, by one compiled validator (a few
        # microseconds); only a failure (or a file, which stands in for its URL) pays for
        # the field-by-field look that names every problem.
        if not any(is_file(value) for value in inputs.values()):
            if "" not in self._validators:
                self._validators[""] = _compile({**self.input, "additionalProperties": False})
            whole = self._validators[""]
            if whole is not None:  # else: no fast path, field by field below
                try:
                    whole(dict(inputs))
                    return []
                except fastjsonschema.JsonSchemaValueException:
                    pass
        problems: list[InputProblem] = []
        fields = self.fields
        for name in inputs:
            if name not in fields:
                close = difflib.get_close_matches(str(name), list(fields), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                known = ", ".join(fields) or "none"
                problems.append(
                    InputProblem(
                        str(name), f"not an input of {self.label}{hint}; it takes: {known}"
                    )
                )
        for name, schema in fields.items():
            if name not in inputs or inputs[name] is None:
                if name in self.required:
                    problems.append(InputProblem(name, f"required: {describe(schema)}"))
                continue
            problem = self._check_field(name, schema, inputs[name], is_file)
            if problem is not None:
                problems.append(problem)
        return problems

    def _check_field(
        self, name: str, schema: dict[str, Any], value: Any, is_file: Callable[[Any], bool]
    ) -> InputProblem | None:
        takes_file = _takes_file(schema)
        if is_file(value):
            if schema.get("format") == "uri":
                return None
            return InputProblem(name, f"takes {describe(schema)}, not a file")
        if takes_file and isinstance(value, list):
            value = [_FILE_STAND_IN if is_file(item) else item for item in value]
        if name not in self._validators:
            self._validators[name] = _compile(schema)
        validator = self._validators[name]
        if validator is None:
            return None  # a schema that does not compile: the server judges this field
        try:
            validator(value)
        except fastjsonschema.JsonSchemaValueException as error:
            shown = json.dumps(value, default=repr)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            message = f"{shown} is not allowed: it takes {describe(schema)}"
            if error.rule not in _DESCRIBED:
                # A rule the short description does not tell (a pattern, a list's length).
                message += f" ({error.message.replace('data', 'it', 1)})"
            return InputProblem(name, message)
        return None

    # -- output ----------------------------------------------------------------------

    def output_plan(self) -> OutputPlan | None:
        """How to decode this version's output; None when it publishes no ``Output``."""
        return None if self.output is None else _plan(self.output, 0)

    # -- for people ------------------------------------------------------------------

    def signature(self) -> str:
        """The inputs (type, default, what each is for) and the output, one per line.

        ``file`` fields take a path, bytes, a binary file object or a URL.
        """
        lines = [f"{self.label}("]
        for name, schema in self.fields.items():
            text = f"    {name}: {python_type(schema)}"
            if name in self.required:
                pass
            elif "default" in schema:
                text += f" = {schema['default']!r}"
            else:
                text += " | None = None"
            text += _bounds(schema)
            description = schema.get("description")
            if description:
                text += f"  # {description}"
            lines.append(text)
        lines.append(f") -> {_output_words(self.output_plan())}")
        return "\n".join(lines)


def _compile(schema: Mapping[str, Any]) -> Callable[[Any], Any] | None:
    """A validator for ``schema``; None if it cannot be compiled.

    (A pattern Python's regular expressions refuse, a keyword used wrongly: that part is
    then not checked locally, and the server judges it.)
    """
    # Only what JSON Schema defines: Cog's x- keys and OpenAPI's extras are dropped,
    # and a default is not the validator's business.
    clean = _strip(schema)
    try:
        validator: Callable[[Any], Any] = fastjsonschema.compile(clean, use_default=False)
    except Exception:  # the schema's fault, not the input's: never fail the call for it
        return None
    return validator


def _strip(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strip(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kept: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-") or key in _NOT_FOR_VALIDATION:
            continue
        if key in ("properties", "patternProperties", "definitions", "$defs") and isinstance(
            value, dict
        ):
            # A map of names to schemas: the names stay (an input may be called "title").
            kept[key] = {name: _strip(sub) for name, sub in value.items()}
        else:
            kept[key] = _strip(value)
    return kept


#: keys a validator has no use for; ``$ref`` left after inlining points outside the
#: document, and must never make the validator fetch a URL
_NOT_FOR_VALIDATION = frozenset({"default", "nullable", "title", "description", "$ref"})


def _plan(schema: Mapping[str, Any], depth: int) -> OutputPlan:
    if depth > _MAX_DEPTH:
        return VALUE
    for union in ("anyOf", "oneOf"):
        # Optional[X] (pydantic 2 writes anyOf: [X, {type: null}]): plan X.
        branches = [
            b for b in schema.get(union) or () if isinstance(b, dict) and b.get("type") != "null"
        ]
        if len(branches) == 1:
            return _plan(branches[0], depth + 1)
    kind = schema.get("type")
    if kind == "string" and schema.get("format") == "uri":
        return OutputPlan("file")
    if kind == "array":
        items = schema.get("items")
        inner = _plan(items, depth + 1) if isinstance(items, dict) else VALUE
        if schema.get("x-cog-array-type") == "iterator":
            concatenate = schema.get("x-cog-array-display") == "concatenate"
            return OutputPlan("iterator", items=inner, concatenate=concatenate)
        return OutputPlan("list", items=inner)
    properties = schema.get("properties")
    if kind == "object" and isinstance(properties, dict):
        fields = {
            name: _plan(sub, depth + 1) for name, sub in properties.items() if isinstance(sub, dict)
        }
        return OutputPlan("object", fields=fields)
    return OutputPlan("value", type_name=python_type(schema))


def _output_words(plan: OutputPlan | None) -> str:
    if plan is None:
        return "Any (no Output schema)"
    if plan.kind == "file":
        return "FileOutput"
    if plan.kind in ("list", "iterator"):
        inner = _output_words(plan.items)
        if plan.kind == "iterator":
            return f"OutputIterator[{inner}]" + (
                " (text, concatenated)" if plan.concatenate else ""
            )
        return f"list[{inner}]"
    if plan.kind == "object":
        return (
            "{"
            + ", ".join(f"{k}: {_output_words(v)}" for k, v in (plan.fields or {}).items())
            + "}"
        )
    return plan.type_name
