"""Validate localcloud's answers against the official Compute v1 discovery document.

The document ships with google-api-python-client. Every response body is walked against the
schema of its method's response: field names must exist (no invented fields), types and
formats must match (int64/uint64 are decimal strings, ``byte`` is base64), enums must hold.
HTTP error bodies are checked against GCE's error envelope, which the document does not
describe.
"""

from __future__ import annotations

import base64
import binascii
import json
from functools import cache
from pathlib import Path
from typing import Any

import googleapiclient

DISCOVERY = (
    Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "compute.v1.json"
)
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1)}


@cache
def _document() -> dict[str, Any]:
    return json.loads(DISCOVERY.read_text())


def _methods(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for resource in resources.values():
        for method in resource.get("methods", {}).values():
            out[method["id"]] = method
        out.update(_methods(resource.get("resources", {})))
    return out


class Validator:
    def __init__(self) -> None:
        doc = _document()
        self.schemas: dict[str, Any] = doc["schemas"]
        self.methods = _methods(doc["resources"])

    def check(self, method_id: str, status: int, body: Any) -> list[str]:
        """Problems with one answer (empty when it conforms)."""
        if status >= 400:
            return self._check_error(body)
        method = self.methods.get(method_id)
        if method is None:
            return [f"{method_id}: not a Compute v1 method"]
        ref = method.get("response", {}).get("$ref")
        if ref is None:
            return [] if body == {} else [f"{method_id}: expected an empty body"]
        return self.validate(body, {"$ref": ref}, method_id)

    def check_file(self, path: Path) -> list[str]:
        """Problems in a daemon's ``--record`` file; also fails on an empty recording."""
        problems: list[str] = []
        lines = path.read_text().splitlines() if path.exists() else []
        if not lines:
            return [f"{path}: no responses were recorded"]
        for line in lines:
            entry = json.loads(line)
            problems += self.check(entry["method"], entry["status"], entry["body"])
        return sorted(set(problems))

    def validate(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        if "$ref" in schema:
            name = schema["$ref"]
            return self.validate(value, self.schemas[name], f"{path}<{name}>")
        kind = schema.get("type", "any")
        check = getattr(self, f"_check_{kind}", None)
        if check is None:
            return []
        return check(value, schema, path)

    def _check_object(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        problems = []
        for key, item in value.items():
            if key in props:
                problems += self.validate(item, props[key], f"{path}.{key}")
            elif extra is not None:
                problems += self.validate(item, extra, f"{path}[{key}]")
            else:
                problems.append(f"{path}: invented field '{key}'")
        return problems

    def _check_array(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, list):
            return [f"{path}: expected an array, got {type(value).__name__}"]
        problems = []
        for i, item in enumerate(value):
            problems += self.validate(item, schema.get("items", {}), f"{path}[{i}]")
        return problems

    def _check_string(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, str):
            return [f"{path}: expected a string, got {type(value).__name__} {value!r}"]
        fmt = schema.get("format")
        if fmt in ("int64", "uint64") and not value.lstrip("-").isdigit():
            return [f"{path}: {fmt} must be a decimal string, got {value!r}"]
        if fmt == "byte":
            try:
                base64.b64decode(value.encode(), validate=True)
            except (binascii.Error, ValueError):
                return [f"{path}: byte field is not base64: {value!r}"]
        if "enum" in schema and value not in schema["enum"]:
            return [f"{path}: {value!r} is not one of the enum values"]
        return []

    def _check_integer(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{path}: expected an integer, got {value!r}"]
        low, high = _INT_RANGES.get(schema.get("format", ""), (None, None))
        if low is not None and not low <= value <= high:
            return [f"{path}: {value} out of {schema['format']} range"]
        return []

    def _check_number(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return [f"{path}: expected a number, got {value!r}"]
        return []

    def _check_boolean(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean, got {value!r}"]

    def _check_error(self, body: Any) -> list[str]:
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict) or set(body) != {"error"}:
            return [f"error body must be {{'error': {{...}}}}, got {body!r}"]
        problems = []
        if set(err) != {"code", "message", "errors"}:
            problems.append(f"error fields must be code, message, errors; got {sorted(err)}")
        if not isinstance(err.get("code"), int) or not isinstance(err.get("message"), str):
            problems.append(f"error code/message have wrong types: {err!r}")
        for item in err.get("errors") or [None]:
            if not isinstance(item, dict) or set(item) != {"reason", "domain", "message"}:
                problems.append(f"error item must have reason, domain, message: {item!r}")
        return problems
