"""The typed snapshot and its JSON: the ``/api/v1/status`` document, byte for byte."""

from __future__ import annotations

import dataclasses
import json

import pytest
from snapshots import SHA, snapshot

from reconciler.loop.view import encode_json

EXPECTED = (
    '{"last_applied_revision":"' + SHA + '","last_attempted_revision":"' + "b" * 40 + '",'
    '"last_applied_at":"2026-12-01T10:00:00+00:00","last_attempted_at":"2026-12-01T10:05:00+00:00",'
    '"last_applied_epoch":1796119200.0,"revision_rejected":true,'
    '"validation_errors":[{"file":"maps/shop.yaml","line":3,"column":5,"code":"E1","message":"bad"}],'
    '"validation_error_count":7,'
    '"hosts":[{"name":"h1","reachable":false},{"name":"h2","reachable":true}],'
    '"maps":[{"name":"shop","version":"1.0","components":['
    '{"id":"db","name":"Database","type":"database","status":"error","impacted_by":[],'
    '"impacted_by_more":0,"dependencies":[],"checks":[{"name":"port","host":"h1","type":"command",'
    '"state":"CRITICAL","hard_state":"CRITICAL","state_type":"hard","attempt":1,"max_attempts":3,'
    '"flapping":true,"message":"exit 2","value":null,"duration_s":0.25,'
    '"last_run":"2026-12-01T10:00:00+00:00","last_state_change":null}]},'
    '{"id":"api","name":null,"type":"service","status":"ok","impacted_by":["db"],'
    '"impacted_by_more":0,"dependencies":["db"],"checks":[{"name":"health","host":"h2",'
    '"type":"command","state":"OK","hard_state":"OK","state_type":"hard","attempt":1,'
    '"max_attempts":3,"flapping":false,"message":"exit 2","value":null,"duration_s":0.25,'
    '"last_run":"2026-12-01T10:00:00+00:00","last_state_change":null}]}]}],"branch":null,'
    '"fetch_error":null,"ssh_connections":2,'
    '"state_write_errors":{"audit":{"reason":"disk full","since":1.0,"failures":3}},'
    '"audit_pending":4,"requests":[]}\n'
).encode()


def test_the_json_document_keeps_the_status_api_keys_and_their_order() -> None:
    assert encode_json(snapshot(audit_pending=4, requests=[]).to_json()) == EXPECTED


def test_the_encoder_in_pieces_writes_what_one_call_would() -> None:
    document = snapshot(audit_pending=4, requests=[]).to_json()
    assert encode_json(document) == json.dumps(document, separators=(",", ":")).encode() + b"\n"


def test_extras_come_last_and_are_json_as_given() -> None:
    document = snapshot(requests_pending=[{"path": "requests/r.yaml"}]).to_json()
    assert list(document)[-1] == "requests_pending"
    assert document["requests_pending"] == [{"path": "requests/r.yaml"}]


def test_the_snapshot_cannot_be_changed_once_built() -> None:
    snap = snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.maps[0].components[0].status = "ok"  # type: ignore[misc]
    assert isinstance(snap.maps[0].components, tuple)


def test_a_count_in_the_extras_reads_as_a_number_or_zero() -> None:
    assert snapshot(audit_pending=4).extra_count("audit_pending") == 4.0
    assert snapshot().extra_count("audit_pending") == 0.0
    assert snapshot(audit_pending="4").extra_count("audit_pending") == 0.0


def test_a_check_as_json_has_every_field_of_the_check_in_order() -> None:
    from reconciler.loop.view import CheckDoc, CheckView

    assert tuple(CheckDoc.__annotations__) == tuple(CheckView.__dataclass_fields__)


def test_a_fleets_status_goes_to_the_c_encoder_in_runs_of_bounded_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One component with 5,000 checks (a fleet's shape): no call of the C encoder gets more
    than RUN_ITEMS items, so that none holds the interpreter lock for long."""
    from snapshots import check

    import reconciler.loop.view as view

    base = snapshot()
    fleet = dataclasses.replace(
        base.maps[0].components[0],
        checks=tuple(check(f"k{i % 5}", f"h{i // 5}", "OK") for i in range(5000)),
    )
    document = dataclasses.replace(
        base, maps=(dataclasses.replace(base.maps[0], components=(fleet,)),)
    ).to_json()
    sizes: list[int] = []
    dumps = json.dumps

    def counted(value: object, **kw: object) -> str:
        sizes.append(view._size(value, 10**9))
        return dumps(value, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(view.json, "dumps", counted)
    encoded = encode_json(document)
    monkeypatch.setattr(view.json, "dumps", dumps)
    assert encoded == json.dumps(document, separators=(",", ":")).encode() + b"\n"
    assert max(sizes) <= view.RUN_ITEMS
    assert len(sizes) > 5000 * 15 // view.RUN_ITEMS  # the checks went in many runs
