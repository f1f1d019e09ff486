"""Locations and users (Version 2021-07-28): readable with a Location token or the agency's token."""

from __future__ import annotations

import copy

from flask import jsonify, request

from integration.sandbox.api import bp
from integration.sandbox.api.common import int_arg
from integration.sandbox.errors import ApiError
from integration.sandbox.guard import (
    COMPANY,
    LOCATION,
    current_grant,
    require_location,
    required_arg,
    resource,
    sandbox_state,
)

COMPANY_FORBIDDEN = "The token does not have access to this company."


@bp.get("/locations/<location_id>")
@resource(token_classes=(LOCATION, COMPANY), scopes=("locations.readonly", "locations.write"))
def get_location(location_id: str):
    state = sandbox_state()
    with state.lock:
        location = copy.deepcopy(state.world.locations.get(location_id))
    if location is None and current_grant().user_type == COMPANY:
        raise ApiError(404, "Location not found", error="Not Found")
    require_location(location_id)
    return jsonify({"location": location})


@bp.get("/users/")
@resource(token_classes=(LOCATION,), scopes=("users.readonly", "users.write"))
def list_users():
    location_id = required_arg("locationId")
    require_location(location_id)
    state = sandbox_state()
    with state.lock:
        users = [copy.deepcopy(u) for u in state.world.location_users(location_id)]
    return jsonify({"users": users})


@bp.get("/users/search")
@resource(token_classes=(LOCATION, COMPANY), scopes=("users.readonly", "users.write"))
def search_users():
    company_id = required_arg("companyId")
    grant = current_grant()
    if company_id != grant.company_id:
        raise ApiError(403, COMPANY_FORBIDDEN)
    location_id = request.args.get("locationId")
    if grant.user_type == LOCATION:
        location_id = location_id or grant.location_id
    if location_id:
        require_location(location_id)
    skip = int_arg("skip", 0, minimum=0)
    limit = int_arg("limit", 25, minimum=1, maximum=500)
    query = (request.args.get("query") or "").lower()
    ids = {i for i in (request.args.get("ids") or "").split(",") if i}
    state = sandbox_state()
    with state.lock:
        company_locations = {loc["id"] for loc in state.world.company_locations(company_id)}
        users = [u for u in state.world.users.values() if set(u["roles"]["locationIds"]) & company_locations]
        if location_id:
            users = [u for u in users if location_id in u["roles"]["locationIds"]]
        if query:
            users = [u for u in users if query in u["name"].lower() or query in u["email"].lower()]
        if ids:
            users = [u for u in users if u["id"] in ids]
        if request.args.get("type"):
            users = [u for u in users if u["roles"]["type"] == request.args["type"]]
        page = [copy.deepcopy(u) for u in users[skip: skip + limit]]
    return jsonify({"users": page, "count": len(users)})
