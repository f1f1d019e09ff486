"""The known starting data: one agency with three sub-accounts (deterministic ids for tests).

Phone numbers use the 555-01xx block reserved for fiction, under real area codes so that
phone-number libraries accept them as valid.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from integration.sandbox.ids import iso, utcnow
from integration.sandbox.records import make_contact, make_conversation, make_message
from integration.sandbox.world import World

__all__ = [
    "APP_SCOPES",
    "SEED_AGENCY_USER_ID",
    "SEED_CALENDAR_IDS",
    "SEED_COMPANY_ID",
    "SEED_COMPANY_NAME",
    "SEED_CONTACT_IDS",
    "SEED_DND_CONTACT_ID",
    "SEED_LOCATION_IDS",
    "SEED_LOCATION_PHONES",
    "SEED_MISSED_CALL_PIPELINE_IDS",
    "SEED_USER_IDS",
    "build_seed",
    "stage_id",
]


def _seed_id(label: str) -> str:
    """Pad a readable label to HighLevel's 20-character id length."""
    assert len(label) <= 20, label
    return label + "0" * (20 - len(label))


SEED_COMPANY_ID = _seed_id("SbxAgencyBrightPath")
SEED_COMPANY_NAME = "BrightPath Marketing"
SEED_AGENCY_USER_ID = _seed_id("SbxUsrAgencyOwner")

_LOCATIONS = [
    {
        "key": "Acme",
        "id": _seed_id("SbxLocAcmePlumbing"),
        "name": "Acme Plumbing",
        "phone": "+15125550100",
        "city": "Austin", "state": "TX", "postalCode": "78701", "address": "100 Congress Ave",
        "timezone": "America/Chicago",
        "users": [("Mike", "Alvarez", "+15125550110", "admin"), ("Sara", "Kim", "+15125550111", "user")],
        "contacts": [("Dana", "Whitfield", "+15125550120", False), ("Luis", "Ortega", "+15125550121", False),
                     ("Priya", "Shah", "+15125550122", True)],
    },
    {
        "key": "Peak",
        "id": _seed_id("SbxLocPeakRoofing"),
        "name": "Peak Roofing",
        "phone": "+17205550100",
        "city": "Denver", "state": "CO", "postalCode": "80202", "address": "1600 Champa St",
        "timezone": "America/Denver",
        "users": [("Jake", "Turner", "+17205550110", "admin"), ("Olivia", "Grant", "+17205550111", "user")],
        "contacts": [("Tom", "Becker", "+17205550120", False), ("Hannah", "Cole", "+17205550121", False)],
    },
    {
        "key": "CoolAir",
        "id": _seed_id("SbxLocCoolAirHvac"),
        "name": "Cool Air HVAC",
        "phone": "+16025550100",
        "city": "Phoenix", "state": "AZ", "postalCode": "85004", "address": "200 W Washington St",
        "timezone": "America/Phoenix",
        "users": [("Ray", "Santos", "+16025550110", "admin"), ("Nina", "Patel", "+16025550111", "user")],
        "contacts": [("Marcus", "Reed", "+16025550120", False), ("Elena", "Park", "+16025550121", False)],
    },
]

SEED_LOCATION_IDS: tuple[str, ...] = tuple(loc["id"] for loc in _LOCATIONS)
SEED_LOCATION_PHONES: dict[str, str] = {loc["id"]: loc["phone"] for loc in _LOCATIONS}
SEED_USER_IDS: dict[str, tuple[str, ...]] = {
    loc["id"]: tuple(_seed_id(f"SbxUsr{loc['key']}{first}") for first, *_ in loc["users"]) for loc in _LOCATIONS
}
SEED_CONTACT_IDS: dict[str, tuple[str, ...]] = {
    loc["id"]: tuple(_seed_id(f"SbxCon{loc['key']}{first}") for first, *_ in loc["contacts"]) for loc in _LOCATIONS
}
# Priya Shah (Acme Plumbing) has SMS DND active: texting her must fail.
SEED_DND_CONTACT_ID = _seed_id("SbxConAcmePriya")
SEED_CALENDAR_IDS: dict[str, str] = {loc["id"]: _seed_id(f"SbxCal{loc['key']}") for loc in _LOCATIONS}
SEED_MISSED_CALL_PIPELINE_IDS: dict[str, str] = {
    loc["id"]: _seed_id(f"SbxPipeMissed{loc['key']}") for loc in _LOCATIONS
}
_SALES_PIPELINE_IDS = {loc["id"]: _seed_id(f"SbxPipeSales{loc['key']}") for loc in _LOCATIONS}

# The scopes a missed-call app asks for (facts §10.2); tests use them on the consent page.
APP_SCOPES = (
    "conversations.readonly conversations.write conversations/message.readonly conversations/message.write "
    "contacts.readonly contacts.write opportunities.readonly opportunities.write calendars.readonly "
    "calendars/events.write locations.readonly users.readonly oauth.readonly oauth.write"
)

MISSED_CALL_STAGES = ("New Lead", "Replied", "Booked", "Won")
SALES_STAGES = ("New", "Contacted", "Proposal Sent", "Closed")

_STAGE_NAMESPACE = uuid.UUID("6f1d7e8a-3b0c-4c4e-9a51-5b1f0d3c2a77")


def stage_id(pipeline_id: str, stage_name: str) -> str:
    """Deterministic UUID of a seeded pipeline stage (HighLevel stage ids are UUIDs)."""
    return str(uuid.uuid5(_STAGE_NAMESPACE, f"{pipeline_id}:{stage_name}"))


def _location_record(spec: dict) -> dict:
    slug = spec["name"].lower().replace(" ", "")
    business = {
        "name": spec["name"], "address": spec["address"], "city": spec["city"], "state": spec["state"],
        "country": "US", "postalCode": spec["postalCode"], "website": f"https://{slug}.example.com",
        "timezone": spec["timezone"], "logoUrl": "",
    }
    first, last, *_ = spec["users"][0]
    return {
        "id": spec["id"],
        "companyId": SEED_COMPANY_ID,
        "name": spec["name"],
        "domain": f"{slug}.sandbox.msgsndr.example",
        "address": spec["address"],
        "city": spec["city"],
        "state": spec["state"],
        "logoUrl": "",
        "country": "US",
        "postalCode": spec["postalCode"],
        "website": business["website"],
        "timezone": spec["timezone"],
        "firstName": first,
        "lastName": last,
        "email": f"office@{slug}.example.com",
        "phone": spec["phone"],
        "business": business,
        "social": {},
        "settings": {
            "allowDuplicateContact": False,
            "allowDuplicateOpportunity": False,
            "allowFacebookNameMerge": False,
            "disableContactTimezone": False,
        },
        "reseller": {},
    }


def _user_record(*, user_id: str, first: str, last: str, phone: str, email: str, roles: dict,
                 lc_phone: dict[str, str]) -> dict:
    return {
        "id": user_id,
        "name": f"{first} {last}",
        "firstName": first,
        "lastName": last,
        "email": email,
        "phone": phone,
        "extension": "",
        "permissions": {"contactsEnabled": True, "conversationsEnabled": True, "opportunitiesEnabled": True,
                        "appointmentsEnabled": True, "phoneCallEnabled": True},
        "roles": roles,
        "deleted": False,
        "lcPhone": lc_phone,
        "platformLanguage": "en_US",
    }


def _pipeline_record(*, pipeline_id: str, name: str, stages: tuple[str, ...], location_id: str) -> dict:
    return {
        "id": pipeline_id,
        "name": name,
        "stages": [
            {"id": stage_id(pipeline_id, stage), "name": stage, "position": index,
             "showInFunnel": True, "showInPieChart": True}
            for index, stage in enumerate(stages)
        ],
        "showInFunnel": True,
        "showInPieChart": True,
        "locationId": location_id,
    }


def _calendar_record(*, calendar_id: str, location_id: str, name: str, user_ids: tuple[str, ...]) -> dict:
    return {
        "id": calendar_id,
        "locationId": location_id,
        "name": f"{name} Service Call",
        "description": "On-site visit booked from a missed call or a reply.",
        "slug": f"{name.lower().replace(' ', '-')}-service-call",
        "widgetSlug": f"{name.lower().replace(' ', '-')}-service-call",
        "calendarType": "round_robin",
        "isActive": True,
        "teamMembers": [
            {"userId": uid, "priority": 0.5, "isPrimary": index == 0} for index, uid in enumerate(user_ids)
        ],
        "slotDuration": 60,
        "slotDurationUnit": "mins",
        "slotInterval": 60,
        "slotIntervalUnit": "mins",
        "slotBuffer": 0,
        "preBuffer": 0,
        "appoinmentPerSlot": 1,
        "appoinmentPerDay": 0,
        "allowBookingAfter": 0,
        "allowBookingFor": 30,
        "allowBookingForUnit": "days",
        # Monday to Friday (0 is Sunday), 08:00-17:00 in the location's time zone.
        "openHours": [{"daysOfTheWeek": [1, 2, 3, 4, 5],
                       "hours": [{"openHour": 8, "openMinute": 0, "closeHour": 17, "closeMinute": 0}]}],
        "eventTitle": "Service call with {{contact.name}}",
        "eventColor": "#039be5",
        "autoConfirm": True,
        "availabilityType": 0,
    }


def build_seed() -> World:
    """A fresh World holding the known seed (a new object every call; callers own it)."""
    world = World()
    world.companies[SEED_COMPANY_ID] = {"id": SEED_COMPANY_ID, "name": SEED_COMPANY_NAME}
    world.users[SEED_AGENCY_USER_ID] = _user_record(
        user_id=SEED_AGENCY_USER_ID, first="Chris", last="Morgan", phone="+15125550199",
        email="chris@brightpath.example.com",
        roles={"type": "agency", "role": "admin", "locationIds": list(SEED_LOCATION_IDS), "restrictSubAccount": False},
        lc_phone={},
    )
    for spec in _LOCATIONS:
        location_id = spec["id"]
        world.locations[location_id] = _location_record(spec)
        slug = spec["name"].lower().replace(" ", "")
        for index, (first, last, phone, role) in enumerate(spec["users"]):
            user_id = SEED_USER_IDS[location_id][index]
            world.users[user_id] = _user_record(
                user_id=user_id, first=first, last=last, phone=phone, email=f"{first.lower()}@{slug}.example.com",
                roles={"type": "account", "role": role, "locationIds": [location_id], "restrictSubAccount": False},
                lc_phone={location_id: spec["phone"]} if index == 0 else {},
            )
        for index, (first, last, phone, dnd) in enumerate(spec["contacts"]):
            contact = make_contact(
                location_id=location_id, contact_id=SEED_CONTACT_IDS[location_id][index], first_name=first,
                last_name=last, phone=phone, email=f"{first.lower()}.{last.lower()}@example.com",
                tags=["customer"] if index == 0 else [], source="sandbox seed", sms_dnd=dnd,
            )
            world.contacts[contact["id"]] = contact
        missed_id = SEED_MISSED_CALL_PIPELINE_IDS[location_id]
        world.pipelines[missed_id] = _pipeline_record(
            pipeline_id=missed_id, name="Missed Call", stages=MISSED_CALL_STAGES, location_id=location_id)
        sales_id = _SALES_PIPELINE_IDS[location_id]
        world.pipelines[sales_id] = _pipeline_record(
            pipeline_id=sales_id, name="Sales", stages=SALES_STAGES, location_id=location_id)
        calendar_id = SEED_CALENDAR_IDS[location_id]
        world.calendars[calendar_id] = _calendar_record(
            calendar_id=calendar_id, location_id=location_id, name=spec["name"], user_ids=SEED_USER_IDS[location_id])
        _seed_history(world, location_id=location_id, contact_id=SEED_CONTACT_IDS[location_id][0],
                      user_id=SEED_USER_IDS[location_id][0])
    return world


def _seed_history(world: World, *, location_id: str, contact_id: str, user_id: str) -> None:
    """A past answered call and a follow-up text, so a returning customer has a thread."""
    conversation = make_conversation(location_id=location_id, contact_id=contact_id,
                                     conversation_id=_seed_id(f"SbxConv{location_id[6:14]}"))
    when = utcnow() - timedelta(days=3)
    call = make_message(conversation=conversation, message_type="TYPE_CALL", direction="inbound", user_id=user_id,
                        meta={"callDuration": "184", "callStatus": "completed"}, date_added=iso(when),
                        message_id=_seed_id(f"SbxMsgCall{location_id[6:14]}"))
    text = make_message(conversation=conversation, message_type="TYPE_SMS", direction="outbound",
                        body="Thanks for calling! Your technician is booked for Thursday.", status="delivered",
                        source="app", user_id=user_id, date_added=iso(when + timedelta(minutes=5)),
                        message_id=_seed_id(f"SbxMsgText{location_id[6:14]}"))
    conversation.update(lastMessageBody=text["body"], lastMessageType="TYPE_SMS", lastMessageDirection="outbound",
                        lastMessageDate=text["dateAdded"], dateUpdated=text["dateAdded"], dateAdded=call["dateAdded"])
    world.add_conversation(conversation, [call, text])


# Area codes for generated sub-accounts (benchmarks with many locations): each gets numbers like the seed's.
_GENERATED_AREA_CODES = (
    "201", "202", "203", "205", "206", "207", "208", "209", "210", "212", "213", "214", "215", "216", "217", "218",
    "219", "224", "225", "228", "229", "231", "234", "239", "240", "248", "251", "252", "253", "254", "256", "260",
    "262", "267", "269", "270", "276", "281", "301", "302", "303", "304", "305", "307", "308", "309", "310", "312",
    "313", "314", "315", "316", "317", "318", "319", "320", "321", "323", "325", "330", "331", "334", "336", "337",
    "339", "347", "351", "352", "360", "361", "385", "386", "401", "402", "404", "405", "406", "407", "408", "409",
    "410", "412", "413", "414", "415", "417", "419", "423", "424", "425", "430", "432", "434", "435", "440", "442",
    "443", "458", "469", "470",
)
MAX_GENERATED_LOCATIONS = len(_GENERATED_AREA_CODES)


def generated_location_id(index: int) -> str:
    return _seed_id(f"SbxLocGen{index:03d}")


def add_generated_locations(world: World, count: int) -> list[str]:
    """Give the seed agency `count` more sub-accounts (numbered 1..count; existing ones are kept): each with an
    owner and a team member, the Missed Call pipeline and a calendar, like the seed's. Returns every generated id.
    """
    if not 0 <= count <= MAX_GENERATED_LOCATIONS:
        raise ValueError(f"count must be between 0 and {MAX_GENERATED_LOCATIONS}")
    ids = []
    for index in range(1, count + 1):
        location_id = generated_location_id(index)
        ids.append(location_id)
        if location_id in world.locations:
            continue
        area = _GENERATED_AREA_CODES[index - 1]
        name = f"Gen Services {index:03d}"
        spec = {"id": location_id, "name": name, "phone": f"+1{area}5550100", "city": "Springfield", "state": "IL",
                "postalCode": "62701", "address": f"{index} Main St", "timezone": "America/Chicago",
                "users": [("Alex", f"Owner{index:03d}", f"+1{area}5550110", "admin"),
                          ("Sam", f"Tech{index:03d}", f"+1{area}5550111", "user")]}
        world.locations[location_id] = _location_record(spec)
        slug = name.lower().replace(" ", "")
        user_ids = []
        for position, (first, last, phone, role) in enumerate(spec["users"]):
            user_id = _seed_id(f"SbxUsrGen{index:03d}{position}")
            user_ids.append(user_id)
            world.users[user_id] = _user_record(
                user_id=user_id, first=first, last=last, phone=phone, email=f"{first.lower()}@{slug}.example.com",
                roles={"type": "account", "role": role, "locationIds": [location_id], "restrictSubAccount": False},
                lc_phone={location_id: spec["phone"]} if position == 0 else {},
            )
        agency_user = world.users.get(SEED_AGENCY_USER_ID)
        if agency_user is not None and location_id not in agency_user["roles"]["locationIds"]:
            agency_user["roles"]["locationIds"].append(location_id)
        pipeline_id = _seed_id(f"SbxPipeGen{index:03d}")
        world.pipelines[pipeline_id] = _pipeline_record(pipeline_id=pipeline_id, name="Missed Call",
                                                        stages=MISSED_CALL_STAGES, location_id=location_id)
        calendar_id = _seed_id(f"SbxCalGen{index:03d}")
        world.calendars[calendar_id] = _calendar_record(calendar_id=calendar_id, location_id=location_id, name=name,
                                                        user_ids=tuple(user_ids))
    return ids
