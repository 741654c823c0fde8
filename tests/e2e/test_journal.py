"""run_many(journal=...): replayed, adopted, recovered, refused; the file as a person reads it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from replicate_async import AsyncReplicate, Journal, JournalError, PredictionFailed
from replicate_async.testing import Emulator, RunContext
from tests.conftest import none_running

CREATE = ("POST", "/models/{owner}/{name}/predictions")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def created_inputs(emulator: Emulator) -> list[Any]:
    return [job.input.get("i") for job in emulator.predictions.values()]


async def numbered(input: dict[str, Any], ctx: RunContext) -> int:
    await ctx.sleep(float(input.get("seconds", 0.0)))
    if input.get("fail"):
        raise ValueError(f"input {input['i']} fails on purpose")
    return int(input["i"]) * 10


@pytest.fixture
def model(emulator: Emulator) -> str:
    emulator.add_model("me/numbered", numbered)
    return "me/numbered"


async def collect(client: AsyncReplicate, ref: str, inputs: Any, **kwargs: Any) -> dict[int, Any]:
    results = {}
    async for result in client.run_many(ref, inputs, **kwargs):
        assert result.index not in results, "a result was handed out twice in one run"
        results[result.index] = result
    return results


async def test_a_finished_job_replays_from_its_journal_without_a_request(
    client: AsyncReplicate, emulator: Emulator, model: str, tmp_path: Path
) -> None:
    path = tmp_path / "job.jsonl"
    inputs = [{"i": i} for i in range(12)] + [{"i": 12, "fail": True}]
    first = await collect(client, model, inputs, journal=path)
    assert {i: r.output for i, r in first.items() if r.ok} == {i: i * 10 for i in range(12)}
    assert isinstance(first[12].error, PredictionFailed)
    assert not any(r.replayed for r in first.values())
    requests = sum(emulator.requests.values())

    again = await collect(client, model, inputs, journal=path)
    assert sum(emulator.requests.values()) == requests, "a replay made a request"
    assert all(r.replayed for r in again.values())
    assert {i: r.output for i, r in again.items()} == {i: r.output for i, r in first.items()}
    # A failure replays as the same failure, with its prediction.
    assert isinstance(again[12].error, PredictionFailed)
    assert again[12].prediction is not None and again[12].prediction.id == first[12].prediction.id

    # replay=False: what the caller took is skipped, and the counts say so.
    seen: list[Any] = []
    skipped = await collect(client, model, inputs, journal=path, replay=False, progress=seen.append)
    assert skipped == {}
    assert seen[-1].skipped == 13 and seen[-1].finished == 0
    assert sum(emulator.requests.values()) == requests
    assert emulator.count(*CREATE) == 13


async def test_the_journal_is_json_lines_in_the_documented_order(
    client: AsyncReplicate, model: str, tmp_path: Path
) -> None:
    path = tmp_path / "job.jsonl"
    await collect(client, model, [{"i": 0}, {"i": 1}], journal=path)
    records = lines(path)
    assert records[0]["journal"] == "replicate_async" and records[0]["version"] == 1
    assert records[0]["ref"] == model
    for index in (0, 1):
        mine = [r for r in records[1:] if r["i"] == index]
        kinds = [next(k for k in ("sent", "id", "done", "taken") if k in r) for r in mine]
        assert kinds == ["sent", "id", "done", "taken"]
        sent, created, done, _ = mine
        assert sent["input"] == {"i": index} and sent["fp"].startswith("sha256:")
        assert done["done"]["id"] == created["id"] and done["done"]["status"] == "succeeded"
        assert done["done"]["output"] == index * 10


async def test_a_journal_of_other_inputs_is_refused_before_anything_is_created(
    client: AsyncReplicate, emulator: Emulator, model: str, tmp_path: Path
) -> None:
    path = tmp_path / "job.jsonl"
    await collect(client, model, [{"i": 0}, {"i": 1}], journal=path)
    with pytest.raises(JournalError, match="input 1 of this job is not the input 1"):
        await collect(client, model, [{"i": 0}, {"i": 99}], journal=path)
    assert emulator.count(*CREATE) == 2
    # Another model's journal: refused at once.
    with pytest.raises(JournalError, match="'me/numbered', not 'emulator/echo'"):
        await collect(client, "emulator/echo", [{"text": "x"}], journal=path)
    # Not a journal at all.
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    with pytest.raises(JournalError, match="not a replicate_async journal"):
        await collect(client, model, [{"i": 0}], journal=other)
    assert other.read_text() == "hello\n"


async def test_one_journal_serves_one_run_at_a_time(
    client: AsyncReplicate, model: str, tmp_path: Path
) -> None:
    path = tmp_path / "job.jsonl"
    slow = client.run_many(model, [{"i": 0, "seconds": 0.5}], journal=path)
    first = asyncio.ensure_future(slow.__anext__())
    await asyncio.sleep(0.2)
    with pytest.raises(JournalError, match="in use"):
        await collect(client, model, [{"i": 0, "seconds": 0.5}], journal=path)
    assert (await first).output == 0
    await slow.aclose()
    # Closed: it opens again.
    assert (await collect(client, model, [{"i": 0, "seconds": 0.5}], journal=path))[0].replayed


async def test_a_torn_last_line_is_dropped_and_a_damaged_one_refused(
    client: AsyncReplicate, emulator: Emulator, model: str, tmp_path: Path
) -> None:
    path = tmp_path / "job.jsonl"
    await collect(client, model, [{"i": 0}, {"i": 1}], journal=path)
    text = path.read_text()
    # A death mid-write: the last line cut short, without its newline.
    path.write_text(text + '{"i":1,"tak')
    again = await collect(client, model, [{"i": 0}, {"i": 1}], journal=path)
    assert all(r.replayed for r in again.values())
    assert path.read_text().endswith("\n")
    assert all(isinstance(record, dict) for record in lines(path))  # the torn bit is gone
    # A damaged line in the middle is not guessed past.
    records = path.read_text().splitlines()
    records[2] = "{not json"
    path.write_text("\n".join(records) + "\n")
    with pytest.raises(JournalError, match="line 3, is damaged"):
        await collect(client, model, [{"i": 0}, {"i": 1}], journal=path)
    assert emulator.count(*CREATE) == 2


async def test_created_but_unfinished_predictions_are_adopted_not_created_again(
    client: AsyncReplicate, emulator: Emulator, model: str, tmp_path: Path
) -> None:
    path = tmp_path / "job.jsonl"
    # What a run killed while they ran leaves: their ids, no ends.
    running = [
        await client.models.predictions.create(model, input={"i": i, "seconds": 0.3})
        for i in range(3)
    ]
    journal = Journal(path)
    await journal.open(model)
    from replicate_async.journal import fingerprint

    for i, prediction in enumerate(running):
        item = {"i": i, "seconds": 0.3}
        await journal.sending(i, fingerprint(item), item)
        await journal.created(i, prediction.id)
    journal.close()
    creates = emulator.count(*CREATE)

    inputs = [{"i": i, "seconds": 0.3} for i in range(3)] + [{"i": 3}]
    results = await collect(client, model, inputs, journal=path)
    assert emulator.count(*CREATE) == creates + 1  # only the never-created one
    assert {i: r.output for i, r in results.items()} == {0: 0, 1: 10, 2: 20, 3: 30}
    assert [results[i].prediction.id for i in range(3)] == [p.id for p in running]  # type: ignore[union-attr]


async def test_creates_whose_reply_never_came_are_found_or_made_before_anything_new(
    client: AsyncReplicate, emulator: Emulator, model: str, tmp_path: Path
) -> None:
    from replicate_async.journal import fingerprint

    path = tmp_path / "job.jsonl"
    # Input 0 and 2 are the same: one of them reached the server, the other did not;
    # input 1 reached it too. The journal knows only that all three were sent.
    # Made by another client: the process that died (its claims died with it).
    async with AsyncReplicate(emulator.token, emulator.url) as dead:
        reached = [
            await dead.models.predictions.create(model, input={"i": 7}),
            await dead.models.predictions.create(model, input={"i": 1}),
        ]
    journal = Journal(path)
    await journal.open(model)
    for index, item in enumerate([{"i": 7}, {"i": 1}, {"i": 7}]):
        await journal.sending(index, fingerprint(item), item)
    journal.close()
    creates = emulator.count(*CREATE)

    results = await collect(client, model, [{"i": 7}, {"i": 1}, {"i": 7}, {"i": 3}], journal=path)
    # One of the two 7s adopted the prediction that exists, the other was created.
    assert emulator.count(*CREATE) == creates + 2
    ids = {results[i].prediction.id for i in range(3)}  # type: ignore[union-attr]
    assert {p.id for p in reached} <= ids and len(ids) == 3
    assert sorted(created_inputs(emulator)) == [1, 3, 7, 7]


async def test_a_refused_create_is_recorded_and_made_next_time_without_a_search(
    client: AsyncReplicate, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "job.jsonl"
    results = await collect(client, "emulator/echo", [{"text": 5}], journal=path)
    assert results[0].error is not None and "422" in str(results[0].error)
    assert lines(path)[-2:] == [{"i": 0, "none": True}, {"i": 0, "taken": True}]
    requests = sum(emulator.requests.values())
    await collect(client, "emulator/echo", [{"text": 5}], journal=path)
    # The second run sent the create again, and looked for nothing.
    assert emulator.count("GET", "/predictions") == 0
    assert sum(emulator.requests.values()) == requests + 1


async def test_file_inputs_are_journaled_as_sent(
    client: AsyncReplicate, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "job.jsonl"
    data = tmp_path / "in.bin"
    data.write_bytes(b"x" * 5000)
    results = await collect(client, "emulator/checksum", [{"file": data}], journal=path)
    assert results[0].ok
    sent = next(r for r in lines(path) if "sent" in r)
    assert sent["input"]["file"].startswith(("http://", "https://", "data:"))
    # The fingerprint is of the input as given (a path), so the rerun replays it.
    again = await collect(client, "emulator/checksum", [{"file": data}], journal=path)
    assert again[0].replayed and again[0].output == results[0].output


async def test_a_full_disk_stops_the_job_before_it_acts_on_what_it_could_not_record(
    client: AsyncReplicate,
    emulator: Emulator,
    model: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "job.jsonl"
    calls = 0
    real = Journal._write

    def failing(self: Journal, data: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise OSError(28, "No space left on device")
        real(self, data)

    monkeypatch.setattr(Journal, "_write", failing)
    with pytest.raises(JournalError, match="No space left on device"):
        await collect(client, model, [{"i": i} for i in range(5)], journal=path, concurrency=1)
    # Nothing was created that the journal does not know was at least sent.
    sent = {r["i"] for r in lines(path) if "sent" in r}
    assert set(created_inputs(emulator)) <= sent


async def test_identical_inputs_lost_at_different_times_each_find_their_own(
    client: AsyncReplicate, emulator: Emulator, model: str, tmp_path: Path
) -> None:
    import time

    from replicate_async.journal import fingerprint

    path = tmp_path / "job.jsonl"
    item = {"i": 5}
    async with AsyncReplicate(emulator.token, emulator.url) as dead:
        first = await dead.models.predictions.create(model, input=item)
        await asyncio.sleep(1.2)
        second = await dead.models.predictions.create(model, input=item)
    journal = Journal(path)
    await journal.open(model)
    await journal.sending(0, fingerprint(item), item)
    await journal.sending(1, fingerprint(item), item)
    journal.close()
    # The second send happened 1.2 s after the first, as the two creates did.
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    records[1]["sent"] = time.time() - 1.3
    records[2]["sent"] = time.time() - 0.1
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    creates = emulator.count(*CREATE)
    results = await collect(client, model, [item, item], journal=path)
    assert emulator.count(*CREATE) == creates  # both adopted, none made again
    assert {r.prediction.id for r in results.values()} == {first.id, second.id}  # type: ignore[union-attr]


async def test_an_error_inside_async_with_does_not_count_the_held_result_as_taken(
    client: AsyncReplicate, model: str, tmp_path: Path
) -> None:
    path = tmp_path / "job.jsonl"
    with pytest.raises(RuntimeError, match="caller failed"):
        async with client.run_many(model, [{"i": 0}], journal=path) as results:
            async for _ in results:
                raise RuntimeError("caller failed")
    # Not taken: the next run (replay=False) hands it over again.
    again = await collect(client, model, [{"i": 0}], journal=path, replay=False)
    assert again[0].output == 0 and again[0].replayed
    # Left normally (a break): taken.
    async with client.run_many(model, [{"i": 1}], journal=tmp_path / "b.jsonl") as results:
        async for _ in results:
            break
    assert (
        await collect(client, model, [{"i": 1}], journal=tmp_path / "b.jsonl", replay=False) == {}
    )


async def test_a_job_that_cancels_its_predictions_makes_them_again_next_run(
    client: AsyncReplicate, emulator: Emulator, model: str, tmp_path: Path
) -> None:
    path = tmp_path / "job.jsonl"
    inputs = [{"i": 0, "seconds": 0.5}, {"i": 1, "seconds": 30}]
    async with client.run_many(
        model, inputs, journal=path, cancel_on_exit=True, wait=False
    ) as results:
        async for result in results:
            assert result.index == 0
            break  # input 1 still runs: the job cancels it on the way out
    for _ in range(100):  # the record is written on the way out, in the writer thread
        if {"i": 1, "none": True} in lines(path):
            break
        await asyncio.sleep(0.02)
    assert {"i": 1, "none": True} in lines(path)
    assert await none_running(emulator)  # and the job canceled it on Replicate
    creates = emulator.count(*CREATE)
    again = await collect(client, model, inputs, journal=path, timeout=0.3, wait=False)
    # Input 1 was made again (its first prediction was canceled, not collected).
    assert emulator.count(*CREATE) == creates + 1
    assert again[0].replayed and type(again[1].error).__name__ == "WaitTimeoutError"
