"""The HTTP contract kept exact for every route, present and future, in one place.

- ``OPTIONS`` answers ``Allow`` with every method of the path: Litestar builds one route per
  group of handlers, and its ``OPTIONS`` answer would list only that group's methods when
  the handlers of one path are split over several groups.
- The OpenAPI document says what the server enforces, beyond what Litestar derives from the
  types: a request Struct that refuses unknown fields (``forbid_unknown_fields``) is
  ``additionalProperties: false``; an operation that creates something carries ``links`` to
  the operations that use what it returns (found from the paths: ``POST /things`` answering
  an ``id`` links to every operation on ``/things/{thing_id}``, and further down), so client
  generators and stateful fuzzers can chain them.

``apply(app)`` is called once by ``create_app``; the document is still built lazily, on the
first request for it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, get_args

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.spec import Link, OpenAPI, Operation, Reference, Schema
from litestar.routes import HTTPRoute

_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def apply(app: Litestar) -> None:
    _allow_every_method_of_the_path(app)
    plugin = app.plugins.get(OpenAPIPlugin)
    plugin.__class__ = _ExactOpenAPIPlugin


def _allow_every_method_of_the_path(app: Litestar) -> None:
    """Litestar makes the ``OPTIONS`` handler with the first route of a path and keeps it
    when it merges the path's later handlers into a new route: its ``Allow`` then names the
    first group's methods only. Point each one at the route that now holds the path."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            function = getattr(handler.fn, "__wrapped__", handler.fn)
            names = getattr(getattr(function, "__code__", None), "co_freevars", ())
            closure = getattr(function, "__closure__", None)
            if handler.http_methods == {"OPTIONS"} and "self" in names and closure:
                cell = closure[names.index("self")]
                if isinstance(cell.cell_contents, HTTPRoute):
                    cell.cell_contents = route


class _ExactOpenAPIPlugin(OpenAPIPlugin):
    """Litestar's OpenAPI plugin, whose document is finished by ``finish`` when built."""

    __slots__ = ()

    def _build_openapi(self) -> OpenAPI:
        document = finish(super()._build_openapi(), _forbidding_structs(self.app))
        _optional_bodies(document, self.app)
        return document


def _optional_bodies(document: OpenAPI, app: Litestar) -> None:
    """A body the handler defaults (``data: X | None = None``) is not required."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        item = (document.paths or {}).get(route.path_format or "/")
        for handler in route.route_handlers:
            data = handler.parsed_fn_signature.parameters.get("data")
            if item is None or data is None or not data.has_default:
                continue
            for method in handler.http_methods:
                operation = getattr(item, method.lower(), None)
                body = getattr(operation, "request_body", None)
                if body is not None and not isinstance(body, Reference):
                    body.required = False


# --- additionalProperties ------------------------------------------------------------------


def _structs_in(annotation: Any) -> Iterator[type[msgspec.Struct]]:
    pending, seen = [annotation], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, type) and issubclass(current, msgspec.Struct):
            yield current
            pending.extend(field.type for field in msgspec.structs.fields(current))
        else:
            pending.extend(get_args(current))  # X | None, Annotated[X, ...], list[X]


def _forbidding_structs(app: Litestar) -> dict[str, bool]:
    """Struct name -> whether it refuses unknown fields, for every Struct a route takes as
    its body (and the Structs nested in them). A name used by two Structs that disagree is
    left out."""
    verdicts: dict[str, set[bool]] = defaultdict(set)
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is None:
                continue
            for struct in _structs_in(data.annotation):
                verdicts[struct.__name__].add(bool(struct.__struct_config__.forbid_unknown_fields))
    return {name: found.pop() for name, found in verdicts.items() if len(found) == 1}


# --- the document --------------------------------------------------------------------------


def finish(document: OpenAPI, forbidding: dict[str, bool]) -> OpenAPI:
    schemas = document.components.schemas if document.components else {}
    for name, schema in (schemas or {}).items():
        if forbidding.get(schema.title or name) and schema.properties is not None:
            schema.additional_properties = False
    _add_links(document, schemas or {})
    _document_refusals(document)
    return document


def _document_refusals(document: OpenAPI) -> None:
    """Every operation that takes parameters or a body can refuse them (422, a problem
    naming the field), and every operation behind a credential can refuse the caller (401,
    403): document those wherever a route's own list leaves them out."""
    problem = _a_problem_response(document)
    if problem is None:
        return
    for _path, _method, operation in _operations(document):
        responses = operation.responses if operation.responses is not None else {}
        wanted = []
        if operation.parameters or operation.request_body:
            wanted.append("422")
        if operation.security:
            wanted += ["401", "403"]
        for status in wanted:
            if status not in responses:
                responses[status] = _copy(problem, status)
        operation.responses = responses


_STATUS_TEXT = {
    "401": "Missing or invalid credentials",
    "403": "Missing scope or role",
    "422": "Invalid input (the problem names the field)",
}


def _a_problem_response(document: OpenAPI) -> Any:
    for _path, _method, operation in _operations(document):
        for response in (operation.responses or {}).values():
            content = getattr(response, "content", None) or {}
            if "application/problem+json" in content:
                return response
    return None


def _copy(response: Any, status: str) -> Any:
    from dataclasses import replace

    return replace(response, description=_STATUS_TEXT[status], links=None)


def _operations(document: OpenAPI) -> Iterator[tuple[str, str, Operation]]:
    for path, item in (document.paths or {}).items():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if isinstance(operation, Operation):
                yield path, method, operation


def _resolve(schema: Schema | Reference | None, schemas: dict[str, Schema]) -> Schema | None:
    if isinstance(schema, Reference):
        return schemas.get(schema.ref.rsplit("/", 1)[-1])
    return schema


def _created_properties(operation: Operation, schemas: dict[str, Schema]) -> set[str]:
    """The properties of what a ``201`` answer returns (none when it answers no 201)."""
    response = (operation.responses or {}).get("201")
    content = getattr(response, "content", None) or {}
    for media in content.values():
        schema = _resolve(media.schema, schemas)
        if schema is not None and schema.properties:
            return set(schema.properties)
    return set()


def _value_for(parameter: str, returned: set[str]) -> str | None:
    """Which returned property fills ``parameter`` of a path below the created thing."""
    if parameter in returned:
        return f"$response.body#/{parameter}"
    for suffix, field in (("_id", "id"), ("id", "id"), ("code", "code"), ("kid", "kid")):
        if parameter.endswith(suffix) and field in returned:
            return f"$response.body#/{field}"
    return None


def _add_links(document: OpenAPI, schemas: dict[str, Schema]) -> None:
    operations = list(_operations(document))
    for path, method, operation in operations:
        if method != "post":
            continue
        returned = _created_properties(operation, schemas)
        if not returned:
            continue
        own = _PARAMETER.findall(path)
        links: dict[str, Link | Reference] = {}
        for target_path, _target_method, target in operations:
            if not target_path.startswith(path + "/{") or not target.operation_id:
                continue
            new = [name for name in _PARAMETER.findall(target_path) if name not in own]
            first = _value_for(new[0], returned) if new else None
            if first is None or len(new) > 1:
                continue  # a path that needs more than the created thing gives
            parameters: dict[str, Any] = {name: f"$request.path.{name}" for name in own}
            parameters[new[0]] = first
            links[target.operation_id] = Link(
                operation_id=target.operation_id,
                parameters=parameters,
                description=f"Use what {operation.operation_id} created",
            )
        if links:
            response = (operation.responses or {})["201"]
            response.links = {**(getattr(response, "links", None) or {}), **links}  # type: ignore[union-attr]
