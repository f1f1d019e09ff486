"""Custom-page SSO: CryptoJS-compatible decryption, and the page trusts only the decrypted tenant."""

import json
import subprocess

import pytest

from integration.db import utcnow
from integration.extensions import db
from integration.models import Company, Installation, Location
from integration.sso import SSOError, decrypt_sso_payload, encrypt_sso_payload

CONTEXT = {"userId": "MKQJ7wOVVmNOMvrnKKKK", "companyId": "GNb7aIv4rQFVb9iwNl5K", "role": "admin",
           "type": "location", "activeLocation": "yLKVZpNppIdYpah4RjNE", "userName": "John Doe",
           "email": "johndoe@gmail.com"}


def openssl_encrypt(plaintext: str, secret: str) -> str:
    """An independent implementation of CryptoJS's passphrase format (ghl-api-facts §10.3)."""
    return subprocess.run(["openssl", "enc", "-aes-256-cbc", "-md", "md5", "-salt", "-pass", f"pass:{secret}",
                           "-a", "-A"], input=plaintext.encode(), capture_output=True, check=True).stdout.decode()


def test_decrypts_what_openssl_encrypts():
    payload = openssl_encrypt(json.dumps(CONTEXT), "s3cret")
    assert payload.startswith("U2FsdGVkX1")
    context = decrypt_sso_payload(payload, "s3cret")
    assert (context.user_id, context.company_id, context.location_id) == (
        "MKQJ7wOVVmNOMvrnKKKK", "GNb7aIv4rQFVb9iwNl5K", "yLKVZpNppIdYpah4RjNE")


def test_openssl_decrypts_what_we_encrypt():
    payload = encrypt_sso_payload(CONTEXT, "s3cret")
    plain = subprocess.run(["openssl", "enc", "-d", "-aes-256-cbc", "-md", "md5", "-pass", "pass:s3cret", "-a", "-A"],
                           input=payload.encode(), capture_output=True, check=True).stdout
    assert json.loads(plain) == CONTEXT


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not base64 at all!", "not base64"),
        ("U2FsdGVkX1" + "A" * 6, "not in the expected format"),
        (encrypt_sso_payload(CONTEXT, "other-secret"), "did not decrypt"),
        (encrypt_sso_payload({"role": "admin"}, "s3cret"), "lacks userId or companyId"),
    ],
)
def test_bad_payloads_are_rejected(payload, message):
    with pytest.raises(SSOError, match=message):
        decrypt_sso_payload(payload, "s3cret")


def _seed(location_id="yLKVZpNppIdYpah4RjNE", company_id="GNb7aIv4rQFVb9iwNl5K", status="active"):
    with db.transaction() as s:
        s.add(Company(id=company_id, name="Summit Agency"))
        s.add(Location(id=location_id, company_id=company_id, name="Acme Plumbing", installed_at=utcnow()))
        s.flush()
        s.add(Installation(user_type="Location", resource_id=location_id, company_id=company_id,
                           location_id=location_id, status=status))


def test_page_without_session_asks_highlevel_for_the_user(client):
    response = client.get("/app?installed=yLKVZpNppIdYpah4RjNE")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "app/sso.js" in html and "TextBack is installed" in html
    script = client.get("/static/app/sso.js")
    assert "REQUEST_USER_DATA" in script.get_data(as_text=True)
    script.close()


def test_sso_then_page_shows_only_the_payloads_location(client, settings):
    _seed()
    _seed(location_id="OtherLocation00000001", company_id="OtherCompany000000001")
    payload = encrypt_sso_payload(CONTEXT, settings.ghl_sso_key)
    assert client.post("/app/sso", json={"encryptedData": payload}).status_code == 200
    html = client.get("/app?location=OtherLocation00000001").get_data(as_text=True)
    assert "Acme Plumbing" in html and "OtherLocation" not in html
    assert "active" in html


def test_needs_reconnect_is_visible(client, settings):
    _seed(status="needs_reconnect")
    client.post("/app/sso", json={"encryptedData": encrypt_sso_payload(CONTEXT, settings.ghl_sso_key)})
    assert "needs reconnecting" in client.get("/app").get_data(as_text=True)


def test_foreign_company_cannot_see_a_location(client, settings):
    _seed()
    forged = dict(CONTEXT, companyId="AttackerCompany000001")
    client.post("/app/sso", json={"encryptedData": encrypt_sso_payload(forged, settings.ghl_sso_key)})
    response = client.get("/app")
    assert response.status_code == 404 and "Acme Plumbing" not in response.get_data(as_text=True)


def test_agency_overview_lists_its_locations(client, settings):
    _seed()
    agency = {k: v for k, v in CONTEXT.items() if k != "activeLocation"} | {"type": "agency"}
    client.post("/app/sso", json={"encryptedData": encrypt_sso_payload(agency, settings.ghl_sso_key)})
    html = client.get("/app").get_data(as_text=True)
    assert "Acme Plumbing" in html and "Summit Agency" in html


@pytest.mark.parametrize("body", [None, {"encryptedData": ""}, {"encryptedData": "garbage"}])
def test_sso_rejects_bad_requests(client, body):
    response = client.post("/app/sso", json=body) if body is not None else client.post("/app/sso", data="x")
    assert response.status_code in (400, 401, 415)
    with client.session_transaction() as browser_session:
        assert "sso" not in browser_session


def test_agency_overview_lists_sub_accounts_whose_token_is_not_minted_yet(client, settings):
    from oauth.models import LocationProvisioning

    _seed()
    with db.transaction() as s:
        s.add(LocationProvisioning(location_id="PendingLocation000001", company_id=CONTEXT["companyId"],
                                   status="failed", reason="HighLevel answered 500 while minting"))
    agency = {k: v for k, v in CONTEXT.items() if k != "activeLocation"} | {"type": "agency"}
    client.post("/app/sso", json={"encryptedData": encrypt_sso_payload(agency, settings.ghl_sso_key)})
    html = client.get("/app").get_data(as_text=True)
    assert "PendingLocation000001" in html and "HighLevel answered 500 while minting" in html
