"""HighLevel's OAuth endpoints: the token endpoint, agency-to-location tokens, installed locations."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from integration.sandbox.api.common import int_arg
from integration.sandbox.errors import LOCATION_FORBIDDEN, ApiError, OAuthError, validation_error
from integration.sandbox.guard import COMPANY, current_grant, required_arg, resource, sandbox_state

__all__ = ["bp"]

bp = Blueprint("sandbox_oauth", __name__)

COMPANY_FORBIDDEN = "The token does not have access to this company."


def _form() -> dict:
    """Form fields, or a JSON object: the spec says form, the official template posts JSON."""
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise validation_error("the request body must be a JSON object or a form")
        return {k: v for k, v in body.items() if isinstance(v, str)}
    return request.form.to_dict()


@bp.post("/oauth/token")
def token():
    form = _form()
    missing = [name for name in ("client_id", "client_secret", "grant_type") if not form.get(name)]
    if missing:
        raise validation_error(*(f"{name} should not be empty" for name in missing))
    grant_type = form["grant_type"]
    user_type = form.get("user_type")
    if user_type and user_type not in {"Company", "Location"}:
        raise validation_error("user_type must be one of the following values: Company, Location")
    state = sandbox_state()
    config = state.config
    if grant_type == "authorization_code":
        if not form.get("code"):
            raise validation_error("code should not be empty")
        body = state.tokens.exchange_code(code=form["code"], client_id=form["client_id"],
                                          client_secret=form["client_secret"], expected_secret=config.client_secret,
                                          redirect_uri=form.get("redirect_uri"), ttl=config.access_token_ttl)
    elif grant_type == "refresh_token":
        if not form.get("refresh_token"):
            raise validation_error("refresh_token should not be empty")
        body = state.tokens.refresh(refresh_token=form["refresh_token"], client_id=form["client_id"],
                                    client_secret=form["client_secret"], expected_client_id=config.client_id,
                                    expected_secret=config.client_secret, user_type=user_type,
                                    ttl=config.access_token_ttl)
    elif grant_type == "client_credentials":
        raise OAuthError("client_credentials is not available for Marketplace apps", status=400,
                         error="Bad Request")
    else:
        raise validation_error("grant_type must be one of the following values: authorization_code, "
                               "refresh_token, client_credentials")
    return jsonify(body)


@bp.post("/oauth/locationToken")
@resource(token_classes=(COMPANY,), scopes=("oauth.write",))
def location_token():
    form = _form()
    missing = [name for name in ("companyId", "locationId") if not form.get(name)]
    if missing:
        raise validation_error(*(f"{name} should not be empty" for name in missing))
    grant = current_grant()
    if form["companyId"] != grant.company_id:
        raise ApiError(403, COMPANY_FORBIDDEN)
    state = sandbox_state()
    with state.lock:
        location = state.world.locations.get(form["locationId"])
        if location is None or location["companyId"] != grant.company_id:
            raise ApiError(403, LOCATION_FORBIDDEN)
        if form["locationId"] not in state.installs:
            raise ApiError(400, "The app is not installed on this location.", error="Bad Request")
    body = state.tokens.mint_location_token(grant, location_id=form["locationId"], user_id=grant.user_id,
                                            ttl=state.config.access_token_ttl)
    # The spec says 200; HighLevel was measured answering 201 (facts §1.3).
    return jsonify(body), 201


@bp.get("/oauth/installedLocations")
@resource(token_classes=(COMPANY,), scopes=("oauth.readonly", "oauth.write"))
def installed_locations():
    company_id = required_arg("companyId")
    app_id = required_arg("appId")
    grant = current_grant()
    if company_id != grant.company_id:
        raise ApiError(403, COMPANY_FORBIDDEN)
    state = sandbox_state()
    if app_id != state.config.app_id:
        raise ApiError(400, f"App {app_id} not found", error="Bad Request")
    skip = int_arg("skip", 0, minimum=0)
    limit = int_arg("limit", 20, minimum=1, maximum=500)
    raw_installed = request.args.get("isInstalled")
    if raw_installed not in (None, "", "true", "false"):
        raise validation_error("isInstalled must be a boolean value")
    query = (request.args.get("query") or "").lower()
    only = request.args.get("locationId")
    with state.lock:
        rows = []
        for location in state.world.company_locations(company_id):
            install = state.installs.get(location["id"])
            if raw_installed == "true" and install is None:
                continue
            if raw_installed == "false" and install is not None:
                continue
            if query and query not in location["name"].lower():
                continue
            if only and location["id"] != only:
                continue
            row = {"_id": location["id"], "name": location["name"],
                   "address": f"{location['address']}, {location['city']}, {location['state']} "
                              f"{location['postalCode']}, {location['country']}",
                   "isInstalled": install is not None}
            if install is not None:
                row.update(versionId=state.config.app_id, installedAt=install.installed_at)
            rows.append(row)
        future = company_id in state.future_installs
    return jsonify({"locations": rows[skip: skip + limit], "count": len(rows), "installToFutureLocations": future})
