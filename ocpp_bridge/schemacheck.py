"""A fast yes/no answer to "does this payload fit its OCPP 2.1 schema?", compiled once per schema.

The ``ocpp`` package checks payloads with jsonschema's ``Draft4Validator``, which walks the
schema anew for every payload (a TransactionEvent with its meter values takes most of a
millisecond). ``compile_schema`` turns the same schema into nested closures that answer only
whether the payload is valid, with jsonschema's Draft 4 semantics for the keywords the OCPP 2.1
schemas use (type, properties, additionalProperties, required, enum, maxLength, minLength,
minimum, maximum, items, minItems, maxItems, ``$ref`` into ``#/definitions``; format is not
checked, as the package's validator has no format checker). A schema with any other keyword
is refused (``Unsupported``) and its payloads keep going through jsonschema alone.

It is a fast path, never the judge: ``ocpp_bridge.rpc.schema_check`` accepts a payload when it
says valid, and asks jsonschema for anything else, so an invalid payload is refused with
exactly the error it always was.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

from jsonschema import Draft4Validator
from jsonschema._utils import equal

Check = Callable[[Any], bool]


class Unsupported(ValueError):
    """The schema uses something this compiler does not implement: use jsonschema."""


def _is_integer(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


# Draft 4's types, as jsonschema's draft4_type_checker tells them
TYPES: dict[str, Check] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
}
_KEYWORDS = frozenset(Draft4Validator.VALIDATORS)  # jsonschema ignores every other key
_IMPLEMENTED = frozenset({"$ref", "type", "properties", "additionalProperties", "required", "enum", "maxLength",
                          "minLength", "minimum", "maximum", "items", "additionalItems", "minItems", "maxItems",
                          "format"})


def compile_validator(validator: Draft4Validator) -> Check:
    """The predicate of ``validator``'s schema (Unsupported if it cannot be compiled exactly)."""
    if validator.format_checker is not None:
        raise Unsupported("a format checker")
    return _Compiler(validator.schema).compile(validator.schema)


class _Compiler:
    def __init__(self, root: Any):
        self.root = root
        self.refs: dict[str, Check] = {}

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return lambda x: True
        if schema is False:
            return lambda x: False
        if not isinstance(schema, dict):
            raise Unsupported(f"a schema that is a {type(schema).__name__}")
        ref = schema.get("$ref")
        if ref is not None:  # Draft 4: a $ref's siblings are ignored
            return self._ref(ref)
        used = [k for k in schema if k in _KEYWORDS]
        unknown = set(used) - _IMPLEMENTED
        if unknown:
            raise Unsupported(f"keywords {sorted(unknown)}")
        checks = [c for c in (self._keyword(k, schema[k], schema) for k in used) if c is not None]
        if not checks:
            return lambda x: True
        if len(checks) == 1:
            return checks[0]
        checks_t = tuple(checks)
        return lambda x: all(c(x) for c in checks_t)

    def _ref(self, ref: Any) -> Check:
        done = self.refs.get(ref)
        if done is not None:
            return done
        if not isinstance(ref, str) or not ref.startswith("#/") or "~" in ref or "%" in ref:
            raise Unsupported(f"$ref {ref!r}")
        target: Any = self.root
        for part in ref[2:].split("/"):
            if not isinstance(target, dict) or part not in target:
                raise Unsupported(f"$ref {ref!r} does not resolve")
            target = target[part]
        cell: list[Check] = []
        self.refs[ref] = lambda x: cell[0](x)  # a recursive reference finds itself
        cell.append(self.compile(target))
        self.refs[ref] = cell[0]
        return cell[0]

    def _keyword(self, k: str, v: Any, schema: dict) -> Check | None:  # noqa: C901 (one branch a keyword)
        if k == "type":
            names = [v] if isinstance(v, str) else v
            if not isinstance(names, list) or not all(isinstance(n, str) and n in TYPES for n in names):
                raise Unsupported(f"type {v!r}")
            tests = tuple(TYPES[n] for n in names)
            if len(tests) == 1:
                return tests[0]
            return lambda x: any(t(x) for t in tests)
        if k == "properties":
            if not isinstance(v, dict):
                raise Unsupported("properties that are not an object")
            props = tuple((name, self.compile(sub)) for name, sub in v.items())

            def properties(x: Any) -> bool:
                if not isinstance(x, dict):
                    return True
                for name, check in props:
                    if name in x and not check(x[name]):
                        return False
                return True
            return properties
        if k == "additionalProperties":
            if "patternProperties" in schema:
                raise Unsupported("patternProperties")
            known = schema.get("properties", {})
            if isinstance(v, dict):
                extra_check = self.compile(v)
                return lambda x: not isinstance(x, dict) or all(extra_check(x[p]) for p in x if p not in known)
            if not v:
                return lambda x: not isinstance(x, dict) or all(p in known for p in x)
            return None
        if k == "required":
            if not isinstance(v, list):
                raise Unsupported("required that is not a list")
            names_t = tuple(v)
            return lambda x: not isinstance(x, dict) or all(p in x for p in names_t)
        if k == "enum":
            values = tuple(v)
            if all(type(e) is str for e in values):
                strings = frozenset(values)
                # a plain str by hash; anything else (a str Enum member hashes by name) as jsonschema compares
                return lambda x: x in strings if type(x) is str else any(equal(e, x) for e in values)
            return lambda x: any(equal(e, x) for e in values)
        if k == "maxLength":
            return lambda x: not isinstance(x, str) or len(x) <= v
        if k == "minLength":
            return lambda x: not isinstance(x, str) or len(x) >= v
        if k == "minimum":
            if schema.get("exclusiveMinimum", False):
                return lambda x: not _is_number(x) or not x <= v
            return lambda x: not _is_number(x) or not x < v
        if k == "maximum":
            if schema.get("exclusiveMaximum", False):
                return lambda x: not _is_number(x) or not x >= v
            return lambda x: not _is_number(x) or not x > v
        if k == "items":
            if not isinstance(v, dict):
                raise Unsupported("items as a list of schemas")
            item = self.compile(v)
            return lambda x: not isinstance(x, list) or all(item(i) for i in x)
        if k == "additionalItems":  # applies only beside a list of item schemas (refused above)
            if not isinstance(schema.get("items", {}), dict):
                raise Unsupported("additionalItems beside a list of item schemas")
            return None
        if k == "minItems":
            return lambda x: not isinstance(x, list) or len(x) >= v
        if k == "maxItems":
            return lambda x: not isinstance(x, list) or len(x) <= v
        if k == "format":
            return None  # no format checker (see compile_validator)
        raise Unsupported(k)
