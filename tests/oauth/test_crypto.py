"""Tokens at rest: MultiFernet encryption and the resumable key rotation."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from integration.models import Installation
from oauth.crypto import TokenCipher, check_stored_tokens, rotate_all
from oauth.errors import TokenDecryptError


def _add_rows(database, cipher, count):
    with database.transaction() as session:
        for index in range(count):
            session.add(Installation(
                user_type="Location", resource_id=f"loc{index:04d}", location_id=f"loc{index:04d}",
                access_token_encrypted=cipher.encrypt(f"access-{index}"),
                refresh_token_encrypted=cipher.encrypt(f"refresh-{index}") if index % 3 else None,
                status="active", is_bulk_installation=False,
            ))


def _plaintexts(database, cipher):
    with database.transaction() as session:
        rows = session.scalars(select(Installation).order_by(Installation.resource_id)).all()
        return [(cipher.decrypt(r.access_token_encrypted), cipher.decrypt_optional(r.refresh_token_encrypted))
                for r in rows]


def test_round_trip_and_ciphertext_is_not_the_token():
    cipher = TokenCipher([Fernet.generate_key().decode()])
    ciphertext = cipher.encrypt("eyJhbGciOiJSUzI1NiJ9.secret.token")
    assert "secret" not in ciphertext
    assert cipher.decrypt(ciphertext) == "eyJhbGciOiJSUzI1NiJ9.secret.token"


def test_wrong_key_raises_a_typed_error_without_the_ciphertext():
    ciphertext = TokenCipher([Fernet.generate_key().decode()]).encrypt("tok")
    with pytest.raises(TokenDecryptError) as caught:
        TokenCipher([Fernet.generate_key().decode()]).decrypt(ciphertext)
    assert ciphertext not in str(caught.value)


def test_repr_hides_keys():
    key = Fernet.generate_key().decode()
    assert key not in repr(TokenCipher([key]))


def test_rotation_re_encrypts_every_row_and_old_key_can_then_be_dropped(database):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old_cipher = TokenCipher([old])
    _add_rows(database, old_cipher, 250)
    before = _plaintexts(database, old_cipher)

    rotating = TokenCipher([new, old])
    report = rotate_all(database, rotating, batch_size=40)
    assert report.scanned == 250 and report.rotated == 250 and report.complete

    only_new = TokenCipher([new])
    assert _plaintexts(database, only_new) == before
    with pytest.raises(TokenDecryptError):
        _plaintexts(database, old_cipher)


def test_rotation_killed_part_way_is_finished_by_running_it_again(database):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    _add_rows(database, TokenCipher([old]), 120)
    before = _plaintexts(database, TokenCipher([old]))
    rotating = TokenCipher([new, old])

    class Killed(Exception):
        pass

    def die_after_second_batch(last_id, report):
        if report.scanned >= 50:
            raise Killed

    with pytest.raises(Killed):
        rotate_all(database, rotating, batch_size=25, after_batch=die_after_second_batch)

    resumed = rotate_all(database, rotating, batch_size=25)
    assert resumed.already_current == 50  # the first run's committed batches are not redone
    assert resumed.rotated == 70
    assert _plaintexts(database, TokenCipher([new])) == before


def test_rotation_reports_undecryptable_rows_and_leaves_them_alone(database):
    old, new, lost = (Fernet.generate_key().decode() for _ in range(3))
    _add_rows(database, TokenCipher([old]), 3)
    with database.transaction() as session:
        row = session.scalar(select(Installation).where(Installation.resource_id == "loc0001"))
        row.access_token_encrypted = TokenCipher([lost]).encrypt("under a key we no longer have")
        broken_id, broken_ct = row.id, row.access_token_encrypted
    report = rotate_all(database, TokenCipher([new, old]))
    assert report.undecryptable == [broken_id]
    assert report.rotated == 2 and not report.complete
    with database.transaction() as session:
        assert session.get(Installation, broken_id).access_token_encrypted == broken_ct


def test_start_up_check_tells_a_wrong_key_set_from_a_few_unreadable_rows(database):
    old, new, lost = (Fernet.generate_key().decode() for _ in range(3))
    assert check_stored_tokens(database, TokenCipher([new])).checked == 0  # nothing stored: nothing to say
    _add_rows(database, TokenCipher([old]), 3)
    with database.transaction() as session:  # an uninstalled sub-account keeps its row but no tokens
        session.add(Installation(user_type="Location", resource_id="gone", location_id="gone", status="uninstalled",
                                 is_bulk_installation=False))

    replaced = check_stored_tokens(database, TokenCipher([new]))
    assert (replaced.checked, len(replaced.undecryptable), replaced.none_decrypt) == (3, 3, True)
    rotating = check_stored_tokens(database, TokenCipher([new, old]))
    assert (rotating.checked, rotating.undecryptable, rotating.none_decrypt) == (3, (), False)

    with database.transaction() as session:
        row = session.scalar(select(Installation).where(Installation.resource_id == "loc0002"))
        row.refresh_token_encrypted = TokenCipher([lost]).encrypt("under a key we no longer have")
        broken_id = row.id
    one_bad = check_stored_tokens(database, TokenCipher([old]))
    assert (one_bad.undecryptable, one_bad.none_decrypt) == ((broken_id,), False)
    assert check_stored_tokens(database, TokenCipher([old]), sample=1).undecryptable == (broken_id,)  # newest first
