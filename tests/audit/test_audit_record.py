"""Audit records: their JSON shape, the hash over canonical JSON, and chain verification."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from reconciler.audit import GENESIS_HASH, AuditFormatError, AuditRecord, Located, verify_chain

SHA_A = "a" * 40
SHA_B = "b" * 40


def chain(n: int, commit: str = SHA_A) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    for seq in range(1, n + 1):
        records.append(
            AuditRecord.create(
                seq=seq,
                id=f"id{seq}",
                timestamp=f"2026-11-22T10:00:0{seq % 10}.000Z",
                action="request.authorized",
                actor="alice@example.com",
                target={"map": "demo", "component": "api", "action": "restart"},
                details={"decision": "allow", "rule": "role operator", "n": seq},
                commit=commit,
                revision=SHA_B,
                prev_hash=records[-1].hash if records else GENESIS_HASH,
            )
        )
    return records


def test_hash_is_sha256_of_canonical_json_of_every_other_field() -> None:
    record = chain(1)[0]
    data = record.to_json()
    del data["hash"]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert record.hash == hashlib.sha256(canonical.encode()).hexdigest()
    assert record.prev_hash == "0" * 64


def test_json_shape_follows_the_original_plus_chain_fields() -> None:
    data = json.loads(chain(1)[0].to_line())
    assert list(data) == [
        "id", "timestamp", "action", "actor", "target", "details",
        "commit", "revision", "seq", "prev_hash", "hash",
    ]  # fmt: skip
    assert "\n" not in chain(1)[0].to_line()


def test_a_line_reads_back_as_the_same_record() -> None:
    record = replace(chain(1)[0])
    assert AuditRecord.from_line(record.to_line()) == record


def test_non_ascii_and_newlines_stay_on_one_line_and_hash_the_same() -> None:
    record = AuditRecord.create(
        seq=1, id="x", timestamp="t", action="request.denied", actor="zoë@example.com",
        target={"request": "requests/é.yaml"}, details={"reason": "a\nb; $(rm -rf /)"},
        commit=SHA_A, revision=None, prev_hash=GENESIS_HASH,
    )  # fmt: skip
    line = record.to_line()
    assert "\n" not in line
    assert "zoë" in line
    assert AuditRecord.from_line(line).compute_hash() == record.hash


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"action": "action.exploded"}, "unknown audit action"),
        ({"details": {"when": object()}}, "not plain JSON"),
        ({"details": {"x": float("nan")}}, "not plain JSON"),
        ({"commit": "abc123"}, "not a full SHA"),
        ({"revision": "HEAD"}, "not a full SHA"),
    ],
)
def test_create_refuses_what_cannot_be_recorded(change: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "seq": 1, "id": "x", "timestamp": "t", "action": "action.started", "actor": "opsmap",
        "target": {}, "details": {}, "commit": SHA_A, "revision": None, "prev_hash": GENESIS_HASH,
    }  # fmt: skip
    with pytest.raises(ValueError, match=message):
        AuditRecord.create(**{**fields, **change})  # type: ignore[arg-type]


def test_details_are_copied_so_later_mutation_changes_nothing() -> None:
    details = {"hosts": ["h1"]}
    record = AuditRecord.create(
        seq=1, id="x", timestamp="t", action="action.started", actor="opsmap", target={},
        details=details, commit=SHA_A, revision=None, prev_hash=GENESIS_HASH,
    )  # fmt: skip
    details["hosts"].append("h2")
    assert record.details == {"hosts": ["h1"]}
    assert record.hash == record.compute_hash()


@pytest.mark.parametrize(
    "line",
    ["not json", "[1, 2]", '{"id": "x"}', json.dumps({**chain(1)[0].to_json(), "seq": 0})],
)
def test_what_is_not_a_record_is_refused(line: str) -> None:
    with pytest.raises(AuditFormatError):
        AuditRecord.from_line(line)


def test_an_intact_chain_verifies_in_any_order() -> None:
    records = chain(5)
    assert verify_chain(reversed(records)) is None


def test_an_edited_field_names_that_record() -> None:
    records = chain(5)
    records[2] = replace(records[2], actor="mallory@example.com")
    broken = verify_chain(records)
    assert broken is not None
    assert (broken.seq, broken.id) == (3, "id3")
    assert "hash does not match" in broken.problem


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link() -> None:
    records = chain(5)
    edited = replace(records[2], actor="mallory@example.com")
    records[2] = replace(edited, hash=edited.compute_hash())
    broken = verify_chain(records)
    assert broken is not None
    assert broken.seq == 4
    assert "prev_hash" in broken.problem


def test_a_removed_record_is_a_gap() -> None:
    records = chain(5)
    del records[1]
    broken = verify_chain(records)
    assert broken is not None
    assert broken.seq == 3
    assert "seq 2 missing" in broken.problem


def test_a_removed_first_record_is_a_gap() -> None:
    broken = verify_chain(chain(3)[1:])
    assert broken is not None
    assert broken.seq == 2
    assert "seq 1 missing" in broken.problem


def test_a_duplicate_id_or_seq_is_named() -> None:
    records = chain(3)
    twin = AuditRecord.create(**{**records[2].content(), "id": "id1"})
    broken = verify_chain([*records[:2], twin])
    assert broken is not None
    assert "id already used by record seq 1" in broken.problem
    broken = verify_chain([*records, replace(records[2], id="other")])
    assert broken is not None
    assert "appears twice" in broken.problem


def test_a_record_moved_to_another_commits_note_is_named() -> None:
    records = chain(2)
    found = [Located(records[0], SHA_A), Located(records[1], SHA_B)]
    broken = verify_chain(found)
    assert broken is not None
    assert broken.seq == 2
    assert f"found in the note of {SHA_B}" in broken.problem
    assert str(broken).startswith("record seq 2 (id id2, commit ")
