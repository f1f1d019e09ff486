"""Shortcuts for the activity and report tests: sign a browser session in by SSO, read a page's rows."""

from __future__ import annotations

import re

from integration.extensions import db
from integration.models import Location
from integration.sso import encrypt_sso_payload


def sign_in(client, settings, location_id: str, *, company_id: str | None = None) -> None:
    """POST /app/sso with a payload for `location_id`, as HighLevel's iframe would (company from the row)."""
    if company_id is None:
        with db.session() as session:
            company_id = session.get(Location, location_id).company_id
    context = {"userId": "UserForActivity000001", "companyId": company_id, "role": "admin", "type": "location",
               "activeLocation": location_id, "userName": "Mike Lee", "email": "mike@example.com"}
    response = client.post("/app/sso", json={"encryptedData": encrypt_sso_payload(context, settings.ghl_sso_key)})
    assert response.status_code == 200, response.get_data(as_text=True)


def table_rows(html: str) -> list[str]:
    """The activity table's rows as whitespace-collapsed text (tags dropped)."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows]


def csrf_of(html: str) -> str:
    """The page's CSRF token (every form carries the session's)."""
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)
