"""Contract checks: does a request we sent, and the answer we parsed, match HighLevel's official specs?

`SpecValidator` loads the vendored OpenAPI specs (integration/ghl/openapi/apps/*.json, CC0) and checks
a `requests.PreparedRequest` against the operation it targets: the operation exists for the method and
path template, the security requirement (a bearer `Authorization`) is met, required headers (`Version`,
with the value the service lists) and parameters are present and well-typed, and the body matches the
request schema for its content type. It checks a `requests.Response` the same way: the status is
documented for the operation and the body matches its schema. Validation is done by openapi-core.

HighLevel's specs are not perfect. Every place where we knowingly diverge from them is listed once,
with its reason and source, in KNOWN_SPEC_DEVIATIONS below; each patch asserts the quirk is still
there, so a spec update that fixes one makes the test suite say so instead of silently masking it.

Used by the test suite (tests/plugins/contract.py); nothing in production calls it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from jsonschema_path import SchemaPath
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.validation.request.exceptions import (
    MissingParameterError,
    MissingRequestBody,
    ParameterValidationError,
    SecurityValidationError,
)
from openapi_core.validation.request.validators import (
    V30RequestBodyValidator,
    V30RequestParametersValidator,
    V30RequestSecurityValidator,
)
from openapi_core.validation.response.validators import V30ResponseDataValidator
from openapi_schema_validator import OAS30Validator

from integration.logging_setup import redact

__all__ = [
    "COMMON_ERROR_STATUSES",
    "KNOWN_SPEC_DEVIATIONS",
    "ContractViolation",
    "SpecDeviation",
    "SpecValidator",
]

SPEC_DIR = Path(__file__).resolve().parent / "openapi"

# First path segment -> spec file (apps/<name>.json).
SERVICE_SPECS = {
    "oauth": "oauth", "contacts": "contacts", "conversations": "conversations", "opportunities": "opportunities",
    "calendars": "calendars", "locations": "locations", "users": "users", "marketplace": "marketplace",
}


class ContractViolation(AssertionError):
    """A request or answer does not match the spec. `problems` lists each finding in a sentence."""

    def __init__(self, subject: str, problems: Iterable[str]) -> None:
        self.subject = subject
        self.problems = list(problems)
        super().__init__(f"{subject} violates the HighLevel spec:\n  - " + "\n  - ".join(self.problems))


# ------------------------------------------------------------------ known deviations, in one place


@dataclass(frozen=True)
class SpecDeviation:
    """One knowing divergence from the vendored spec: where, what we do instead, and why."""

    spec: str
    where: str
    change: str
    reason: str
    patch: Callable[[dict], None]


def _schema(spec: dict, name: str) -> dict:
    return spec["components"]["schemas"][name]


def _drop_required(schema_name: str, *fields: str) -> Callable[[dict], None]:
    def patch(spec: dict) -> None:
        schema = _schema(spec, schema_name)
        missing = [f for f in fields if f not in schema.get("required", [])]
        assert not missing, f"{schema_name} no longer requires {missing}: remove this deviation"
        schema["required"] = [f for f in schema["required"] if f not in fields]
    return patch


def _also_status(path: str, method: str, documented: str, extra: str) -> Callable[[dict], None]:
    def patch(spec: dict) -> None:
        responses = spec["paths"][path][method]["responses"]
        assert extra not in responses, f"{method.upper()} {path} now documents {extra}: remove this deviation"
        responses[extra] = copy.deepcopy(responses[documented])
    return patch


def _nested_messages(spec: dict) -> None:
    response = spec["paths"]["/conversations/{conversationId}/messages"]["get"]["responses"]["200"]
    media = response["content"]["application/json"]
    flat = media["schema"]
    assert flat == {"$ref": "#/components/schemas/GetMessagesByConversationResponseDto"}, "schema changed"
    media["schema"] = {"anyOf": [flat, {"type": "object", "required": ["messages"],
                                        "properties": {"messages": flat}}]}


def _duplicate_search_schema(spec: dict) -> None:
    response = spec["paths"]["/contacts/search/duplicate"]["get"]["responses"]["200"]
    assert "content" not in response, "the spec now documents this answer: remove this deviation"
    # OpenAPI 3.0 cannot make a $ref nullable, so the contact schema is copied and marked nullable.
    contact = {**copy.deepcopy(_schema(spec, "GetContectByIdSchema")), "nullable": True}
    response["content"] = {"application/json": {"schema": {"type": "object", "properties": {"contact": contact}}}}


def _message_types_csv(spec: dict) -> None:
    parameters = spec["paths"]["/conversations/{conversationId}/messages"]["get"]["parameters"]
    (parameter,) = [p for p in parameters if p["name"] == "type"]
    schema = parameter["schema"]
    assert "enum" in schema and "," in schema.get("example", ""), "the type parameter changed: revisit"
    choice = "|".join(re.escape(value) for value in schema.pop("enum"))
    schema["pattern"] = f"^({choice})(,({choice}))*$"


def _pipeline_stage_items(spec: dict) -> None:
    stages = _schema(spec, "PipelinesResponseSchema")["properties"]["stages"]
    assert stages == {"type": "array", "items": {"type": "array"}}, "stage items changed: revisit this deviation"
    stages["items"] = {"type": "object", "required": ["id", "name"],
                       "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                      "position": {"type": "number"}}}


KNOWN_SPEC_DEVIATIONS: tuple[SpecDeviation, ...] = (
    SpecDeviation(
        "conversations", "SendMessageBodyDto.required", "subType and status are optional",
        "ghl-api-facts §3.1: the 2026 spec marks them required, every earlier spec required only type and "
        "contactId; an artifact of spec generation (status is an answer field, not an SMS input).",
        _drop_required("SendMessageBodyDto", "subType", "status")),
    SpecDeviation(
        "conversations", "SendMessageResponseDto.required", "status is optional in the answer",
        "ghl-api-facts §3.1: the documented answer is {conversationId, messageId, msg}; 'status' is only "
        "listed by the 2026 spec.",
        _drop_required("SendMessageResponseDto", "status")),
    SpecDeviation(
        "conversations", "POST /conversations/messages responses", "201 accepted like 200",
        "ghl-api-facts §3.1 / open question 8: 'The response status is 200 per spec; 201 is possible'.",
        _also_status("/conversations/messages", "post", "200", "201")),
    SpecDeviation(
        "conversations", "GET /conversations/{conversationId}/messages 200", "flat or nested {messages:{messages}}",
        "ghl-api-facts §3.3: two independent real-world clients read the list nested under messages.messages.",
        _nested_messages),
    SpecDeviation(
        "conversations", "GET /conversations/{conversationId}/messages ?type", "a comma-separated list of the enum",
        "the parameter's own description ('separated with comma') and example ('TYPE_SMS,TYPE_CALL') and "
        "ghl-api-facts §3.3 say CSV, but its schema is a single-value enum.",
        _message_types_csv),
    SpecDeviation(
        "oauth", "POST /oauth/locationToken responses", "201 accepted like 200",
        "ghl-api-facts §1.3: measured 201 against the live API; the spec says 200.",
        _also_status("/oauth/locationToken", "post", "200", "201")),
    SpecDeviation(
        "opportunities", "PipelinesResponseSchema.stages.items", "stage items are objects {id, name, position}",
        "ghl-api-facts §5.1: the spec types each stage as an array (items: {type: array}); the documented and "
        "real stage is an object with id (UUID), name and position.",
        _pipeline_stage_items),
    SpecDeviation(
        "contacts", "GET /contacts/search/duplicate 200", "documented as {contact: Contact | null}",
        "ghl-api-facts §4.2: the spec gives no schema; real answers are {contact: {...}} or {contact: null}.",
        _duplicate_search_schema),
)

# Not a patch but a setting: openapi-core's own validation of the spec documents is switched off, because
# HighLevel's specs fail it in ways that do not affect validating traffic: security schemes of type http
# that also carry name/in, a query parameter with anyOf and no schema (conversations startAfterDate), and
# "type": "any". We validate traffic against them; we do not need them to be valid documents.
SPEC_DOCUMENT_VALIDATION = None

# ghl-api-facts §11: any endpoint can answer these, but operations list only a few. An undocumented
# status from this set is accepted; its JSON body, if any, must have HighLevel's error shape. 429 and
# 5xx bodies are undocumented (§9, §11) and not checked.
COMMON_ERROR_STATUSES = frozenset({400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504})
COMMON_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "statusCode": {"type": "number"},
        "message": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "error": {"type": "string"},
        "error_description": {"type": "string"},
        "traceId": {"type": "string"},
    },
    "anyOf": [{"required": ["message"]}, {"required": ["error"]}],
}


# ------------------------------------------------------------------ the validator


@dataclass(frozen=True)
class Operation:
    spec: str
    method: str
    template: str
    server: str


class _LoadedSpec:
    def __init__(self, name: str, document: dict, base_uri: str) -> None:
        self.name = name
        self.document = document
        self.spec = SchemaPath.from_dict(document, base_uri=base_uri)
        self.server = document["servers"][0]["url"].rstrip("/")
        options = {"spec_validator_cls": SPEC_DOCUMENT_VALIDATION}
        self.security = V30RequestSecurityValidator(self.spec, **options)
        self.parameters = V30RequestParametersValidator(self.spec, **options)
        self.body = V30RequestBodyValidator(self.spec, **options)
        self.response_data = V30ResponseDataValidator(self.spec, **options)


class SpecValidator:
    """Validates requests and answers against the vendored HighLevel specs (with KNOWN_SPEC_DEVIATIONS)."""

    def __init__(self, spec_dir: Path = SPEC_DIR, *,
                 deviations: Iterable[SpecDeviation] = KNOWN_SPEC_DEVIATIONS) -> None:
        self.spec_dir = Path(spec_dir)
        self.deviations = tuple(deviations)
        self._loaded: dict[str, _LoadedSpec] = {}

    # -- loading

    def _load(self, name: str) -> _LoadedSpec:
        if name not in self._loaded:
            path = self.spec_dir / "apps" / f"{name}.json"
            document = json.loads(path.read_text())
            for deviation in self.deviations:
                if deviation.spec == name:
                    deviation.patch(document)
            self._loaded[name] = _LoadedSpec(name, document, path.as_uri())
        return self._loaded[name]

    def load_all(self) -> None:
        """Load every spec and apply every deviation (fails if a deviation no longer applies)."""
        for name in sorted(set(SERVICE_SPECS.values())):
            self._load(name)

    @cached_property
    def _error_validator(self) -> OAS30Validator:
        return OAS30Validator(COMMON_ERROR_SCHEMA)

    # -- lookup

    def _spec_for(self, path: str) -> _LoadedSpec | None:
        service = path.lstrip("/").split("/", 1)[0]
        name = SERVICE_SPECS.get(service)
        return self._load(name) if name else None

    def operation_for(self, method: str, url_or_path: str) -> Operation:
        """The documented operation a request targets; ContractViolation if there is none."""
        path = urlsplit(url_or_path).path
        loaded = self._spec_for(path)
        subject = f"{method.upper()} {path}"
        if loaded is None:
            raise ContractViolation(subject, ["no vendored spec covers this path"])
        request = _on_server(requests.Request(method.upper(), loaded.server + path).prepare(), loaded.server)
        try:
            _, _, _, path_result, _ = loaded.body._find_path(request)
        except PathError as exc:
            raise ContractViolation(subject, [f"no such operation in {loaded.name}.json ({exc})"]) from None
        return Operation(loaded.name, method.upper(), path_result.pattern, loaded.server)

    # -- requests

    def request_problems(self, prepared: requests.PreparedRequest) -> list[str]:
        """Every way the request departs from its operation (empty when it conforms)."""
        path = urlsplit(prepared.url).path
        loaded = self._spec_for(path)
        if loaded is None:
            return [f"no vendored spec covers {path}"]
        request = _on_server(prepared, loaded.server)
        problems: list[str] = []
        for error in loaded.security.iter_errors(request):
            problems.extend(_describe(error, "request"))
            if isinstance(error, PathError):
                return problems
        for error in loaded.parameters.iter_errors(request):
            problems.extend(_describe(error, "request"))
        for error in loaded.body.iter_errors(request):
            if not isinstance(error, MissingRequestBody) or _body_required(error):
                problems.extend(_describe(error, "request body"))
        return _unique(problems)

    def validate_request(self, prepared: requests.PreparedRequest) -> None:
        problems = self.request_problems(prepared)
        if problems:
            raise ContractViolation(_subject(prepared), problems)

    # -- answers

    def response_problems(self, prepared: requests.PreparedRequest, response: requests.Response) -> list[str]:
        """Every way the answer departs from what the operation documents (empty when it conforms)."""
        path = urlsplit(prepared.url).path
        loaded = self._spec_for(path)
        if loaded is None:
            return [f"no vendored spec covers {path}"]
        request = _on_server(prepared, loaded.server)
        try:
            _, operation, _, _, _ = loaded.body._find_path(request)
        except PathError as exc:
            return [f"no such operation ({exc})"]
        status = response.status_code
        documented = operation / "responses"
        if str(status) not in documented and "default" not in documented:
            if status not in COMMON_ERROR_STATUSES:
                return [f"status {status} is not documented for this operation "
                        f"(documented: {', '.join(documented.keys())})"]
            return self._common_error_problems(response)
        problems = []
        for error in loaded.response_data.iter_errors(request, RequestsOpenAPIResponse(response)):
            problems.extend(_describe(error, f"answer {status}"))
        return _unique(problems)

    def _common_error_problems(self, response: requests.Response) -> list[str]:
        status = response.status_code
        if status == 429 or status >= 500 or not (response.content or b"").strip():
            return []
        try:
            body = response.json()
        except ValueError:
            return [f"answer {status}: error body is not JSON"]
        return [redact(f"answer {status}: {_where(e)}{_schema_message(e)}")
                for e in self._error_validator.iter_errors(body)]

    def validate_response(self, prepared: requests.PreparedRequest, response: requests.Response) -> None:
        problems = self.response_problems(prepared, response)
        if problems:
            raise ContractViolation(f"{_subject(prepared)} -> {response.status_code}", problems)

    def validate(self, prepared: requests.PreparedRequest, response: requests.Response | None = None) -> None:
        """Validate a request and, when given, its answer; one ContractViolation listing everything."""
        problems = self.request_problems(prepared)
        if response is not None:
            problems += self.response_problems(prepared, response)
        if problems:
            subject = _subject(prepared) + (f" -> {response.status_code}" if response is not None else "")
            raise ContractViolation(subject, problems)


# ------------------------------------------------------------------ helpers


def _on_server(prepared: requests.PreparedRequest, server: str) -> RequestsOpenAPIRequest:
    """The request as if sent to the spec's server: the sandbox or a test server listens elsewhere."""
    copy_ = prepared.copy()
    parts, target = urlsplit(prepared.url), urlsplit(server)
    copy_.url = urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))
    return RequestsOpenAPIRequest(copy_)


def _subject(prepared: requests.PreparedRequest) -> str:
    return f"{prepared.method} {urlsplit(prepared.url).path}"


def _body_required(error: MissingRequestBody) -> bool:
    from openapi_core.validation.request.exceptions import MissingRequiredRequestBody

    return isinstance(error, MissingRequiredRequestBody)


def _where(error: Any) -> str:
    location = "/".join(str(part) for part in getattr(error, "absolute_path", ()) or ())
    return f"{location}: " if location else ""


def _schema_message(error: Any) -> str:
    """A jsonschema error in a sentence. For anyOf/oneOf, the reasons of each branch instead of the
    message, which would quote the whole value (and a token answer's value holds tokens)."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[int, list[str]] = {}
        for sub in error.context:
            branches.setdefault(sub.schema_path[0] if sub.schema_path else 0, []).append(
                f"{_where(sub)}{_schema_message(sub)}")
        reasons = "; ".join(f"({index + 1}) " + ", ".join(found) for index, found in sorted(branches.items()))
        return f"matches none of the {error.validator} alternatives: {reasons}"
    if error.validator == "type":
        instance = error.instance
        shown = repr(instance) if isinstance(instance, (int, float, bool)) or instance is None or (
            isinstance(instance, str) and len(instance) <= 40) else f"a {type(instance).__name__}"
        return f"{shown} is not of type {error.validator_value!r}"
    return error.message


def _describe(error: BaseException, context: str) -> list[str]:
    """Sentences for one openapi-core error; schema errors one per finding, never the whole value (secrets)."""
    if isinstance(error, SecurityValidationError):
        return [f"{context}: no valid Authorization header (the operation requires a bearer token)"]
    if isinstance(error, ParameterValidationError) and not isinstance(error, MissingParameterError):
        context = f"{context}: {error.location} parameter {error.name}"
    schema_errors = getattr(error, "schema_errors", None) or getattr(error.__cause__, "schema_errors", None)
    if schema_errors:
        return [redact(f"{context}: {_where(e)}{_schema_message(e)}") for e in schema_errors]
    cause = error.__cause__
    text = f"{error}" + (f" ({cause})" if cause is not None and str(cause) not in str(error) else "")
    return [redact(f"{context}: {text}")]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
