"""The sandbox's web UI: an agency, its sub-accounts and contacts, calls, threads and fault switches.

Server-rendered (Jinja, autoescaped). Every form posts to a view that calls the same operations as
the control API (integration.sandbox.crm), so what a person does here is what tests do.
"""

from __future__ import annotations

import copy
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for

from integration.sandbox import crm
from integration.sandbox.crm import CrmError
from integration.sandbox.faults import FAULT_MODES, FaultError, FaultRule
from integration.sandbox.guard import sandbox_state
from integration.sandbox.payloads import CALL_OUTCOMES
from integration.sandbox.records import sms_dnd_active

__all__ = ["bp"]

bp = Blueprint("sandbox_ui", __name__)


# -- CSRF: the sandbox listens on localhost, where any web page could post to it. ------------------


def _csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


@bp.app_context_processor
def _template_helpers():
    return {"csrf_token": _csrf_token, "when": _when}


@bp.before_request
def _check_csrf():
    if request.method == "POST":
        sent = request.form.get("csrf", "")
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
            abort(400, "The form expired; reload the page and try again.")


def _when(iso_text: str) -> str:
    try:
        moment = datetime.fromisoformat(iso_text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return iso_text or ""
    return moment.strftime("%b %d, %H:%M:%S UTC")


# -- pages --------------------------------------------------------------------------------------------


def _location_summaries(state) -> list[dict]:
    rows = []
    for location in state.world.locations.values():
        contacts = state.world.location_contacts(location["id"])
        rows.append({"id": location["id"], "name": location["name"], "phone": location["phone"],
                     "timezone": location["timezone"], "city": location["city"], "state": location["state"],
                     "installed": location["id"] in state.installs, "contacts": len(contacts),
                     "companyId": location["companyId"]})
    return rows


@bp.get("/")
def dashboard():
    state = sandbox_state()
    with state.lock:
        companies = [dict(c) for c in state.world.companies.values()]
        locations = _location_summaries(state)
        grants = state.tokens.live_grants()
        names = {loc["id"]: loc["name"] for loc in state.world.locations.values()}
        contacts = []
        for contact in state.world.contacts.values():
            conversation = state.world.conversation_for(contact["locationId"], contact["id"])
            contacts.append({"id": contact["id"], "name": contact["name"], "phone": contact["phone"],
                             "location": names[contact["locationId"]], "dnd": sms_dnd_active(contact),
                             "last": conversation["lastMessageDate"] if conversation else "",
                             "unread": conversation["unreadCount"] if conversation else 0})
        contacts.sort(key=lambda row: row["last"], reverse=True)
    deliveries = list(reversed(state.dispatcher.deliveries()))[:15]
    return render_template("sandbox/dashboard.html", companies=companies, locations=locations,
                           contacts=contacts, deliveries=deliveries, faults=state.faults.list(),
                           fault_modes=FAULT_MODES, outcomes=list(CALL_OUTCOMES), config=state.config,
                           connected={g.resource_id for g in grants})


def _thread_rows(state, contact_id: str) -> list[dict]:
    contact = state.world.contacts[contact_id]
    conversation = state.world.conversation_for(contact["locationId"], contact_id)
    return copy.deepcopy(state.world.messages.get(conversation["id"], [])) if conversation else []


@bp.get("/ui/locations/<location_id>")
def location_page(location_id: str):
    state = sandbox_state()
    with state.lock:
        location = copy.deepcopy(state.world.locations.get(location_id))
        if location is None:
            abort(404)
        contacts = []
        for contact in sorted(state.world.location_contacts(location_id), key=lambda c: c["dateUpdated"],
                              reverse=True):
            conversation = state.world.conversation_for(location_id, contact["id"])
            contacts.append({"contact": copy.deepcopy(contact), "dnd": sms_dnd_active(contact),
                             "last": copy.deepcopy(conversation) if conversation else None})
        contacts.sort(key=lambda row: row["last"]["lastMessageDate"] if row["last"] else "", reverse=True)
        opportunities = [copy.deepcopy(o) for o in state.world.opportunities.values()
                         if o["locationId"] == location_id]
        stages = {s["id"]: (p["name"], s["name"]) for p in state.world.pipelines.values()
                  if p["locationId"] == location_id for s in p["stages"]}
        appointments = sorted((copy.deepcopy(a) for a in state.world.appointments.values()
                               if a["locationId"] == location_id), key=lambda a: a["startTime"])
        users = copy.deepcopy(state.world.location_users(location_id))
        names = {c["id"]: c["name"] or c["phone"] for c in state.world.location_contacts(location_id)}
        installed = state.is_installed(location_id)
        config = state.config
    return render_template("sandbox/location.html", location=location, contacts=contacts,
                           opportunities=opportunities, stages=stages, appointments=appointments, users=users,
                           names=names, outcomes=list(CALL_OUTCOMES), installed=installed,
                           app_page_url=config.app_page_url if installed else None,
                           sso_payload=_sso_payload(config, location, users) if installed else None)


def _sso_payload(config, location: dict, users: list[dict]) -> str | None:
    """What HighLevel hands the Custom Page on REQUEST_USER_DATA: the user context, encrypted (§10.3)."""
    if not config.app_page_url or not users:
        return None

    user = next((u for u in users if u.get("roles", {}).get("role") == "admin"), users[0])
    return _user_context(config, user, company_id=location["companyId"], location_id=location["id"])


def _user_context(config, user: dict, *, company_id: str, location_id: str | None) -> str:
    """HighLevel's user context for `user`, encrypted with the app's shared secret; an agency user opened from
    the agency view has no activeLocation."""
    from integration.sso import encrypt_sso_payload

    context = {"userId": user["id"], "companyId": company_id, "role": user.get("roles", {}).get("role", "user"),
               "type": "location" if location_id else "agency", "userName": user.get("name"),
               "email": user.get("email")}
    if location_id:
        context["activeLocation"] = location_id
    return encrypt_sso_payload(context, config.sso_key)


@bp.get("/ui/companies/<company_id>")
def agency_page(company_id: str):
    """The agency view: HighLevel embeds the app's page with an agency user's context (no activeLocation)."""
    state = sandbox_state()
    with state.lock:
        company = copy.deepcopy(state.world.companies.get(company_id))
        if company is None:
            abort(404)
        agency_user = next((copy.deepcopy(u) for u in state.world.users.values()
                            if u["roles"]["type"] == "agency" and u.get("companyId", company_id) == company_id), None)
        config = state.config
    payload = None
    if config.app_page_url and agency_user is not None:
        payload = _user_context(config, agency_user, company_id=company_id, location_id=None)
    return render_template("sandbox/agency.html", company=company, app_page_url=config.app_page_url,
                           sso_payload=payload)


@bp.get("/ui/contacts/<contact_id>")
def contact_page(contact_id: str):
    state = sandbox_state()
    with state.lock:
        contact = copy.deepcopy(state.world.contacts.get(contact_id))
        if contact is None:
            abort(404)
        location = copy.deepcopy(state.world.locations[contact["locationId"]])
        messages = _thread_rows(state, contact_id)
        users = {u["id"]: u["name"] for u in state.world.users.values()}
        opportunities = [copy.deepcopy(o) for o in state.world.opportunities.values() if o["contactId"] == contact_id]
        stages = {s["id"]: s["name"] for p in state.world.pipelines.values() for s in p["stages"]}
        notes = [copy.deepcopy(n) for n in state.world.notes.values() if n["contactId"] == contact_id]
        tasks = [copy.deepcopy(t) for t in state.world.tasks.values() if t["contactId"] == contact_id]
        appointments = sorted((copy.deepcopy(a) for a in state.world.appointments.values()
                               if a["contactId"] == contact_id), key=lambda a: a["startTime"])
    # Suggest tomorrow 10:00 in the sub-account's time zone for a booking.
    tomorrow = datetime.now(ZoneInfo(location["timezone"])) + timedelta(days=1)
    suggested = tomorrow.replace(hour=10, minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M")
    return render_template("sandbox/contact.html", contact=contact, location=location, messages=messages,
                           users=users, opportunities=opportunities, stages=stages, notes=notes, tasks=tasks,
                           appointments=appointments, suggested_start=suggested,
                           dnd=sms_dnd_active(contact), outcomes=list(CALL_OUTCOMES))


@bp.get("/ui/webhooks")
def webhooks_page():
    deliveries = list(reversed(sandbox_state().dispatcher.deliveries()))
    return render_template("sandbox/webhooks.html", deliveries=deliveries)


# -- actions ------------------------------------------------------------------------------------------


def _back(default: str):
    target = request.form.get("next", "")
    # Only local paths: never an open redirect.
    return redirect(target if target.startswith("/") and not target.startswith("//") else default)


@bp.post("/ui/calls")
def place_call():
    try:
        duration = int(request.form.get("duration") or 0)
        result = crm.place_call(sandbox_state(), location_id=request.form.get("locationId", ""),
                                from_number=request.form.get("from", ""),
                                outcome=request.form.get("outcome", ""), duration=duration,
                                recording_base=request.host_url)
    except ValueError as exc:  # CrmError, or a duration that is not a number
        flash(str(exc) if isinstance(exc, CrmError) else "Duration must be a whole number of seconds.", "error")
        return _back(url_for("sandbox_ui.dashboard"))
    flash(f"Call placed ({request.form.get('outcome')}); InboundMessage webhook sent.", "ok")
    return redirect(url_for("sandbox_ui.contact_page", contact_id=result["contactId"]))


@bp.post("/ui/appointments")
def book():
    """Book the job for a contact on the sub-account's calendar, as a person does in HighLevel."""
    contact_id = request.form.get("contactId", "")
    state = sandbox_state()
    with state.lock:
        contact = state.world.contacts.get(contact_id)
        zone = ZoneInfo(state.world.locations[contact["locationId"]]["timezone"]) if contact else UTC
    try:
        start = datetime.fromisoformat(request.form.get("start", "")).replace(tzinfo=zone)
        crm.book_appointment(state, contact_id=contact_id, start=start)
    except ValueError as exc:  # CrmError, or a start that is not a date and time
        flash(str(exc) if isinstance(exc, CrmError) else "Pick a date and time for the job.", "error")
        return _back(url_for("sandbox_ui.dashboard"))
    flash("Appointment booked; AppointmentCreate webhook sent.", "ok")
    return redirect(url_for("sandbox_ui.contact_page", contact_id=contact_id))


@bp.post("/ui/replies")
def reply():
    state = sandbox_state()
    contact_id = request.form.get("contactId", "")
    with state.lock:
        contact = copy.deepcopy(state.world.contacts.get(contact_id))
    if contact is None:
        abort(404)
    try:
        crm.receive_reply(state, location_id=contact["locationId"], from_number=contact["phone"],
                          body=request.form.get("body", ""))
    except CrmError as exc:
        flash(str(exc), "error")
    return redirect(url_for("sandbox_ui.contact_page", contact_id=contact_id))


@bp.post("/ui/person-messages")
def person_message():
    """Text the contact as the sub-account's user, as from HighLevel's conversation view."""
    contact_id = request.form.get("contactId", "")
    try:
        crm.person_writes(sandbox_state(), contact_id=contact_id, user_id=request.form.get("userId") or None,
                          body=request.form.get("body", ""))
    except CrmError as exc:
        flash(str(exc), "error")
    return redirect(url_for("sandbox_ui.contact_page", contact_id=contact_id))


@bp.post("/ui/faults")
def add_fault():
    state = sandbox_state()
    form = request.form
    data = {"mode": form.get("mode", ""), "path": form.get("path") or ".*", "method": form.get("method") or None}
    try:
        data["times"] = int(form["times"]) if form.get("times") else None
        if form.get("delay"):
            data["delay"] = float(form["delay"])
        state.faults.add(FaultRule.from_dict(data, default_delay=state.config.default_fault_delay))
    except (FaultError, ValueError) as exc:
        flash(str(exc) if isinstance(exc, FaultError) else "times and delay must be numbers.", "error")
    else:
        flash(f"Fault armed: {data['mode']} on {data['path']}.", "ok")
    return redirect(url_for("sandbox_ui.dashboard"))


@bp.post("/ui/faults/clear")
def clear_faults():
    sandbox_state().faults.clear()
    flash("Faults cleared.", "ok")
    return redirect(url_for("sandbox_ui.dashboard"))


@bp.post("/ui/reset")
def reset():
    sandbox_state().reset()
    flash("Sandbox reset to the seed.", "ok")
    return redirect(url_for("sandbox_ui.dashboard"))
