"""The Marketplace consent page (`/v2/oauth/chooselocation`): pick a sub-account or bulk-install.

Choosing a sub-account gives a Location token on exchange and one INSTALL webhook (installType
Location). "Bulk install for the agency" gives a Company token with isBulkInstallation true and
an INSTALL webhook per sub-account. Cancel redirects with error=access_denied. The redirect URI
must be one the app registered; otherwise the page refuses instead of redirecting anywhere.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, redirect, render_template, request

from integration.sandbox import crm
from integration.sandbox.guard import sandbox_state
from integration.sandbox.tokens import Grant

__all__ = ["bp"]

bp = Blueprint("sandbox_consent", __name__)

_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state", "version_id", "loginWindowOpenMode")


class ConsentRequestError(ValueError):
    """The authorization request is malformed; shown on the page, never redirected."""


def _validated(params: dict) -> dict:
    config = sandbox_state().config
    if params.get("response_type") != "code":
        raise ConsentRequestError("response_type must be 'code'.")
    if params.get("client_id") != config.client_id:
        raise ConsentRequestError("Unknown client_id: no Marketplace app has this client id.")
    if params.get("redirect_uri") not in config.redirect_uris:
        raise ConsentRequestError("redirect_uri is not one of the app's registered redirect URLs.")
    if not (params.get("scope") or "").split():
        raise ConsentRequestError("scope is required (space-separated scopes).")
    return params


def _redirect_to(redirect_uri: str, **query: str | None) -> str:
    parts = urlsplit(redirect_uri)
    extra = urlencode({k: v for k, v in query.items() if v})
    joined = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, parts.fragment))


def _page(params: dict, *, error: str | None = None, status: int = 200, form_ok: bool = True):
    state = sandbox_state()
    with state.lock:
        agencies = [
            {"company": dict(company),
             "locations": [{"id": loc["id"], "name": loc["name"], "city": loc["city"], "state": loc["state"],
                            "installed": loc["id"] in state.installs}
                           for loc in state.world.company_locations(company["id"])]}
            for company in state.world.companies.values()
        ]
    scopes = (params.get("scope") or "").split()
    return render_template("sandbox/consent.html", params=params, agencies=agencies, scopes=scopes, error=error,
                           form_ok=form_ok, hidden={k: params[k] for k in _PARAMS if params.get(k)}), status


@bp.get("/v2/oauth/chooselocation")
@bp.get("/oauth/chooselocation")
def choose_location():
    params = request.args.to_dict()
    try:
        _validated(params)
    except ConsentRequestError as exc:
        return _page(params, error=str(exc), status=400, form_ok=False)
    return _page(params)


@bp.post("/v2/oauth/chooselocation")
@bp.post("/oauth/chooselocation")
def decide():
    params = {k: v for k, v in request.form.items() if k in _PARAMS}
    try:
        _validated(params)
    except ConsentRequestError as exc:
        return _page(params, error=str(exc), status=400, form_ok=False)
    redirect_uri = params["redirect_uri"]
    if request.form.get("action") == "cancel":
        return redirect(_redirect_to(redirect_uri, error="access_denied", state=params.get("state")), code=302)
    choice = request.form.get("choice", "")
    state = sandbox_state()
    config = state.config
    scopes = frozenset(params["scope"].split())
    with state.lock:
        if choice.startswith("bulk:"):
            company_id = choice.removeprefix("bulk:")
            company = state.world.companies.get(company_id)
            if company is None:
                return _page(params, error="Pick a sub-account or the agency.", status=400)
            locations = [loc["id"] for loc in state.world.company_locations(company_id)]
            owner = next((u["id"] for u in state.world.users.values()
                          if u["roles"]["type"] == "agency" and set(u["roles"]["locationIds"]) & set(locations)), "")
            grant = Grant(user_type="Company", company_id=company_id, location_id=None, scopes=scopes,
                          user_id=owner, client_id=config.client_id, is_bulk=True,
                          approved_locations=tuple(locations))
            install_args = {"company_id": company_id, "location_ids": locations, "bulk": True, "user_id": owner}
        elif choice.startswith("location:"):
            location = state.world.locations.get(choice.removeprefix("location:"))
            if location is None:
                return _page(params, error="Pick a sub-account or the agency.", status=400)
            installer = state.world.location_users(location["id"])[0]["id"]
            grant = Grant(user_type="Location", company_id=location["companyId"], location_id=location["id"],
                          scopes=scopes, user_id=installer, client_id=config.client_id)
            install_args = {"company_id": location["companyId"], "location_ids": [location["id"]], "bulk": False,
                            "user_id": installer}
        else:
            return _page(params, error="Pick a sub-account or the agency.", status=400)
    code = state.tokens.issue_code(grant, redirect_uri=redirect_uri, ttl=config.code_ttl)
    crm.install(state, **install_args)
    return redirect(_redirect_to(redirect_uri, code=code, state=params.get("state")), code=302)
