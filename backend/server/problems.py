"""RFC 9457 problem details: every error the HTTP API returns, as ``application/problem+json``.

A client of the API meets one error shape whatever went wrong: an unknown charger, a
bad query parameter, a missing token, a charger that did not answer. Each body has
``type``, ``title``, ``status``, ``detail`` and ``instance`` (the request path), plus
extension members where they help (``errors`` for validation, ``ocpp_error_code`` for a
charger's CALLERROR).

``type`` is ``about:blank`` when the HTTP status says it all (RFC 9457 section 4.2.1;
``title`` is then the status phrase), and a ``urn:depotsim:problem:...`` name for the
problems a client may want to tell apart. Those URNs are stable identifiers, not
documentation links: the API has no documentation site to point at.

Raise :class:`Problem` in a route; :func:`install_problem_handlers` turns it, and the
framework's own errors (unknown path, wrong method, validation), into problem responses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.store import StoreError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
ABOUT_BLANK: Final = "about:blank"
_URN: Final = "urn:depotsim:problem:"

CHARGER_NOT_FOUND: Final = _URN + "charger-not-found"
TRANSACTION_NOT_FOUND: Final = _URN + "transaction-not-found"
VALIDATION: Final = _URN + "validation-error"
UNAUTHORIZED: Final = _URN + "unauthorized"
NOT_IMPLEMENTED: Final = _URN + "not-implemented"
CHARGER_NOT_CONNECTED: Final = _URN + "charger-not-connected"
CHARGER_CALL_ERROR: Final = _URN + "charger-call-error"
CHARGER_TIMEOUT: Final = _URN + "charger-timeout"
CHARGER_CONNECTION_LOST: Final = _URN + "charger-connection-lost"
STORE_UNAVAILABLE: Final = _URN + "store-unavailable"


class ProblemDetails(BaseModel):
    """The body of every error response; extension members are allowed (RFC 9457 section 3.2)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default=ABOUT_BLANK, description="URI reference naming the problem type.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="The HTTP status code.")
    detail: str | None = Field(default=None, description="What went wrong in this occurrence.")
    instance: str | None = Field(default=None, description="The request path that met the problem.")


class Problem(Exception):
    """An error a route answers with a problem response; raise it instead of HTTPException.

    Args:
        status: the HTTP status.
        detail: what went wrong this time, written for the person reading the response.
        type_: the problem type URI; ``about:blank`` when the status says it all.
        title: the type's summary; the status phrase by default.
        headers: extra response headers (``WWW-Authenticate`` for a 401).
        extensions: extra members of the body.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type_: str = ABOUT_BLANK,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_
        self.title = title if title is not None else _phrase(status)
        self.headers = headers
        self.extensions = extensions or {}


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    """The ``application/problem+json`` response for ``problem`` met while serving ``request``."""
    body: dict[str, Any] = {
        "type": problem.type,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
        **problem.extensions,
    }
    return JSONResponse(
        jsonable_encoder(body),
        status_code=problem.status,
        headers=dict(problem.headers) if problem.headers else None,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries declaring problem bodies for ``statuses`` on a route."""
    schema = {"$ref": f"#/components/schemas/{ProblemDetails.__name__}"}
    return {
        status: {"content": {PROBLEM_MEDIA_TYPE: {"schema": schema}}, "description": _phrase(status)}
        for status in statuses
    }


def add_problem_schema(app: FastAPI) -> None:
    """Put :class:`ProblemDetails` into ``app``'s OpenAPI components, where :func:`problem_responses` points.

    FastAPI files a response ``model`` under ``application/json`` only; the problem
    responses are declared by reference instead, so the schema is added here.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas[ProblemDetails.__name__] = ProblemDetails.model_json_schema()
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    """Make ``app`` answer every error, its own and the framework's, as problem details."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)  # registered for Problem only
        return problem_response(request, exc)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
        if exc.status_code == HTTPStatus.NOT_FOUND and detail == "Not Found":
            detail = f"no such resource: {request.url.path}; GET /openapi.json lists the paths"
        return problem_response(request, Problem(exc.status_code, detail, headers=exc.headers))

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"location": list(error.get("loc", ())), "message": error.get("msg", ""), "type": error.get("type", "")}
            for error in exc.errors()
        ]
        summary = "; ".join(f"{'.'.join(map(str, e['location']))}: {e['message']}" for e in errors)
        return problem_response(
            request,
            Problem(
                422,
                f"the request is invalid: {summary}" if summary else "the request is invalid",
                type_=VALIDATION,
                title="Invalid request",
                extensions={"errors": errors},
            ),
        )

    async def on_store_error(request: Request, exc: Exception) -> JSONResponse:
        # The store names the database (without a password) and the cause: useful to the
        # operator who owns this API, and no secret.
        log.error("store error serving %s: %s", request.url.path, exc)
        return problem_response(
            request, Problem(503, str(exc), type_=STORE_UNAVAILABLE, title="The database is unavailable")
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the traceback and re-raises after this response is sent.
        return problem_response(request, Problem(500, "an unexpected error; the server log has the details"))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StoreError, on_store_error)
    app.add_exception_handler(Exception, on_unexpected)
    add_problem_schema(app)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
