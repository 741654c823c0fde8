"""The journal file on its own: fingerprints, loading, what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replicate_async import Journal, JournalError
from replicate_async.journal import fingerprint


def test_fingerprints_ignore_key_order_and_tell_inputs_apart() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 1.5})
    assert fingerprint({"a": "1"}) != fingerprint({"a": 1})
    # Files: a path by its name, bytes by their content.
    assert fingerprint({"f": Path("/x/a.png")}) != fingerprint({"f": Path("/x/b.png")})
    assert fingerprint({"f": b"abc"}) == fingerprint({"f": bytearray(b"abc")})
    assert fingerprint({"f": b"abc"}) != fingerprint({"f": b"abd"})
    assert fingerprint({"f": Path("/x")}) != fingerprint({"f": "/x"})


async def test_a_new_journal_starts_with_its_header_and_records_in_order(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    await journal.open("a/b")
    await journal.sending(0, "sha256:x", {"p": 1})
    await journal.created(0, "id0")
    await journal.done(0, {"id": "id0", "status": "succeeded", "output": 2})
    await journal.taken(0)
    journal.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[0]["journal"] == "replicate_async" and records[0]["ref"] == "a/b"
    assert [sorted(r) for r in records[1:]] == [
        ["fp", "i", "input", "sent"],
        ["i", "id"],
        ["done", "i"],
        ["i", "taken"],
    ]
    # Read back, it knows what happened.
    again = Journal(path)
    await again.open("a/b")
    entry = again.check(0, "sha256:x")
    assert entry is not None and entry.taken and entry.done is not None and entry.id == "id0"
    with pytest.raises(JournalError, match="input 0 of this job is not"):
        again.check(0, "sha256:y")
    again.close()


async def test_writes_after_close_are_refused_not_sent_elsewhere(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    await journal.open("a/b")
    journal.close()
    with pytest.raises(JournalError, match=r"not open|closed"):
        await journal.created(0, "x")


async def test_another_version_or_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps({"journal": "replicate_async", "version": 99, "ref": "a/b"}) + "\n")
    with pytest.raises(JournalError, match="version 99"):
        await Journal(path).open("a/b")
    path.write_text('{"i": 0}\n')
    with pytest.raises(JournalError, match="not a replicate_async journal"):
        await Journal(path).open("a/b")


async def test_an_input_json_cannot_hold_is_a_clear_error(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    await journal.open("a/b")
    with pytest.raises(JournalError, match="must be JSON values"):
        await journal.sending(0, "sha256:x", {"when": object()})
    journal.close()
