"""The state database's connection string is read as libpq reads it, and no form of it
shows a password: a URL or ``key=value``, with ``#``, ``?``, ``@``, ``%``, spaces, any
Unicode; nor does a driver error about it (libpq's own complaints quote what they refuse)."""

from __future__ import annotations

from urllib.parse import quote

import psycopg
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reconciler.store.postgres.db import reason
from reconciler.store.postgres.url import (
    ConnInfoError,
    is_state_url,
    masked,
    parameters,
    scrubbed,
    secrets,
)
from reconciler.store.protocol import StateError

SECRET = "Zq9#wX?v@%2Fk p"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pa#ss@h:5/db", "postgresql://u:***@h:5/db"),
        ("postgresql://u:pa?ss@h/db?sslmode=disable", "postgresql://u:***@h/db?sslmode=disable"),
        ("postgresql://u:p%40ss@db:5432/state", "postgresql://u:***@db:5432/state"),
        ("postgresql://u:p%41@h/db?password=sec%23", "postgresql://u:***@h/db"),
        ("postgres://u@/state?host=/run/pg&password=x", "postgres://u:***@/state?host=/run/pg"),
        ("postgresql://u@h/db?passfile=/x&sslpassword=y", "postgresql://u@h/db?passfile=***&sslpassword=***"),
        ("postgresql://u:s@[::1]:5432,h2:6/db", "postgresql://u:***@[::1]:5432,h2:6/db"),
        ("postgresql://db/state?sslmode=require", "postgresql://db/state?sslmode=require"),
        ("postgresql://u:p%zzss@h/db", "postgresql://***"),
        ("postgresql://u:pw@[::1/x", "postgresql://***"),
        ("postgresql://u:pw@h/db?bogus=1", "postgresql://***"),
        ("host=h user=u password='a b#?@%' dbname=d", "user=u password=*** dbname=d host=h"),
        ("host=h password=x junk", "***"),
        ("postgresql://u:p@ss@h/db", "postgresql://***"),
    ],
)  # fmt: skip
def test_the_string_is_shown_as_libpq_reads_it_with_its_secrets_masked(
    url: str, shown: str
) -> None:
    assert masked(url) == shown


def test_both_forms_name_a_database_and_a_directory_does_not() -> None:
    assert is_state_url("postgresql://db/x")
    assert is_state_url("POSTGRES://db/x")
    assert is_state_url("host=db dbname=x")
    assert not is_state_url("/var/lib/opsmap")
    assert not is_state_url("mysql://db/x")
    assert not is_state_url("state dir")
    assert not is_state_url("postgresql:/db")


def test_a_string_libpq_refuses_is_refused_without_a_word_of_it() -> None:
    for refused in (f"postgresql://u:{SECRET}%zz@h/db", f"host=h password={SECRET} junk"):
        with pytest.raises(ConnInfoError) as raised:
            parameters(refused)
        assert "p%zz" not in str(raised.value)
        assert "Zq9" not in str(raised.value)


def test_the_store_refuses_such_a_string_before_connecting() -> None:
    from reconciler.store.postgres import PostgresStore

    with pytest.raises(StateError) as refused:
        PostgresStore(f"postgresql://u:{SECRET}%zz@127.0.0.1:1/db")
    assert "Zq9" not in str(refused.value)
    assert "libpq does not accept" in str(refused.value)


def test_a_driver_error_that_quotes_the_password_is_scrubbed() -> None:
    """libpq itself quotes the token it cannot decode: what the store shows has none of it."""
    url = f"postgresql://u:{quote(SECRET, safe='')}%zz@127.0.0.1:1/db"
    with pytest.raises(psycopg.Error) as raised:
        psycopg.connect(url, connect_timeout=1)
    assert "Zq9" in str(raised.value)  # the driver's own message quotes it
    shown = reason(raised.value, secrets(url))
    assert "Zq9" not in shown
    assert "***" in shown


passwords = st.text(min_size=4).filter(lambda p: "\0" not in p)


def _forms(user: str, password: str) -> list[str]:
    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    return [
        f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@db:5432/state",
        f"postgresql://db/state?password={quote(password, safe='')}",
        f"host=db dbname=state password='{escaped}'",
    ]


@settings(max_examples=300, deadline=None)
@given(password=passwords, user=st.text(alphabet=st.characters(codec="utf-8"), min_size=1))
def test_no_form_of_any_password_is_shown(password: str, user: str) -> None:
    assume("\0" not in user)
    for conninfo, template in zip(_forms(user, password), _forms(user, "x"), strict=True):
        around = masked(template) + template
        assume(password not in around and quote(password, safe="") not in around)
        shown = masked(conninfo)
        assert password not in shown
        assert quote(password, safe="") not in shown
        assert password not in scrubbed(f"complaint about {conninfo}", secrets(conninfo))


@settings(max_examples=300, deadline=None)
@given(raw=st.text())
def test_any_string_is_masked_without_error_and_shows_no_secret_libpq_finds(raw: str) -> None:
    conninfo = f"postgresql://u:{raw}@db/state"
    shown = masked(conninfo)
    for secret in secrets(conninfo):
        if len(secret) >= 4 and secret not in "postgresql://u:***@db/state":
            assert secret not in shown
