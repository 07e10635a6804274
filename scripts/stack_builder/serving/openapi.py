"""The API's OpenAPI document, written by hand (it is small and it is the contract), and a docs page made from
it that needs nothing from elsewhere (no script, no font: it works on a machine without the internet)."""
from __future__ import annotations

import html
import json
import logging
from typing import Any

from stack_builder.serving.questions import Limits

LOGGER = logging.getLogger(__name__)

_ERROR = {"type": "object", "required": ["error", "message"],
          "properties": {"error": {"type": "string", "description": "the kind, for a client to branch on"},
                         "message": {"type": "string", "description": "what is wrong, for a person"}}}
_COLUMN = {"type": "object", "properties": {"name": {"type": "string"},
                                            "kind": {"enum": ["float", "integer", "string", "boolean"]}}}


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {400: "bad input: bad JSON, too many keys, a key too long, a malformed digest or tag",
               404: "no such model, or a tag the registry does not have", 413: "the body is too large",
               503: "the store (or the registry, for a tag) did not answer: retry"}
    return {str(code): {"description": meaning[code], "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}} for code in codes}


def document(limits: Limits) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this server, with its limits."""
    question = {
        "type": "object", "required": ["keys"], "additionalProperties": False,
        "properties": {
            "keys": {"type": "array", "minItems": 1, "maxItems": limits.max_keys,
                     "items": {"type": "string", "minLength": 1, "maxLength": limits.max_key_chars}},
            "digest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$",
                       "description": "the model image's digest whose predictions are asked for"},
            "tag": {"type": "string", "description": "a tag of the image, resolved to its digest through the "
                    "registry (default: the server's --default-tag); not with digest"},
            "values": {"enum": ["object", "list"], "default": "object", "description": "a found row's values as "
                       "{column: value}, or (smaller, for many columns) as a list in the order of columns"}}}
    result = {"oneOf": [
        {"type": "object", "properties": {"key": {"type": "string"}, "status": {"const": "found"},
                                          "values": {"type": ["object", "array"],
                                                     "description": "column -> value, or a list (values: list)"}}},
        {"type": "object", "properties": {"key": {"type": "string"}, "status": {"const": "not precalculated"},
                                          "digest": {"type": "string", "description": "the digest asked for"}}}]}
    answer = {"type": "object", "properties": {
        "image": {"type": "string"}, "digest": {"type": "string", "description": "the one digest of every row"},
        "tag": {"type": ["string", "null"]}, "columns": {"type": "array", "items": _COLUMN},
        "found": {"type": "integer"}, "missing": {"type": "integer"},
        "results": {"type": "array", "items": result, "description": "one per key, in the order asked"}}}
    model = {"type": "object", "properties": {
        "image": {"type": "string"}, "digest": {"type": ["string", "null"]}, "rows": {"type": "integer"},
        "columns": {"type": "array", "items": _COLUMN}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "stack-builder predictions", "version": "1",
                 "description": "Precalculated predictions of model images, by image digest. Read-only."},
        "paths": {
            "/models": {"get": {"summary": "The models stored: image, digest, rows and columns",
                                "responses": {"200": {"description": "the models", "content": {"application/json": {
                                    "schema": {"type": "object", "properties": {
                                        "models": {"type": "array", "items": model}}}}}}, **_errors(503)}}},
            "/models/{image}/predict": {"post": {
                "summary": f"The stored predictions for up to {limits.max_keys} keys, for one digest",
                "parameters": [{"name": "image", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": question}}},
                "responses": {"200": {"description": "one result per key", "content": {"application/json": {
                    "schema": answer}}}, **_errors(400, 404, 413, 503)}}},
            "/healthz": {"get": {"summary": "The server runs", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "The store answers", "responses": {
                "200": {"description": "ready"}, **_errors(503)}}},
        },
        "components": {"schemas": {"Error": _ERROR}},
    }


def page(spec: dict[str, Any]) -> str:
    """The docs page: each operation, its summary, and its request and answers as JSON schema."""
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(spec['info']['title'])}"
             "</title><style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
             "pre{background:#f4f4f4;padding:.5rem;overflow:auto}h2{font-family:monospace}</style></head><body>",
             f"<h1>{html.escape(spec['info']['title'])}</h1><p>{html.escape(spec['info']['description'])}</p>",
             "<p>The machine-readable document: <a href=\"/openapi.json\">/openapi.json</a>.</p>"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            parts.append(f"<h2>{method.upper()} {html.escape(path)}</h2><p>{html.escape(operation['summary'])}</p>")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is not None:
                parts.append(f"<h3>Request</h3><pre>{html.escape(json.dumps(body, indent=2))}</pre>")
            parts.append("<h3>Answers</h3><ul>")
            for code, answer in operation["responses"].items():
                parts.append(f"<li><b>{code}</b>: {html.escape(answer['description'])}</li>")
            parts.append("</ul>")
    return "".join(parts) + "</body></html>"
