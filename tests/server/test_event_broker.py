"""The event stream's broker: ids, the ring, resuming, filters, and slow subscribers dropped."""

from __future__ import annotations

import asyncio
import json

import pytest

from reconciler.server.broker import Event, EventBroker, wire


def check_event(broker: EventBroker, n: int, *, map_name: str = "m") -> Event:
    return broker.publish("check", {"map": map_name, "component": f"c{n}", "state": "OK"})


def everything(event: Event) -> bool:
    return True


def test_ids_increase_and_the_wire_format_is_one_json_line() -> None:
    broker = EventBroker()
    first = check_event(broker, 1)
    second = broker.publish("component", {"map": "m", "component": "c\nid: 9\n\nevil"})
    assert second.id == first.id + 1 == broker.last_id
    lines = second.wire.decode().split("\n")
    assert lines[0] == f"id: {second.id}"
    assert lines[1] == "event: component"
    assert lines[2].startswith("data: ")
    assert json.loads(lines[2].removeprefix("data: "))["component"] == "c\nid: 9\n\nevil"
    assert lines[3:] == ["", ""]  # the text's line breaks stay inside the JSON string


def test_ids_do_not_repeat_across_brokers_made_one_after_the_other() -> None:
    earlier = EventBroker()
    for n in range(100):
        check_event(earlier, n)
    later = EventBroker()
    assert check_event(later, 0).id > earlier.last_id


def test_resuming_replays_what_came_after_the_id_and_only_that() -> None:
    broker = EventBroker(buffer=10)
    events = [check_event(broker, n) for n in range(5)]
    sub = broker.subscribe(everything, last_id=events[1].id)
    assert sub.reset is None
    assert [e.id for e in sub.take()] == [e.id for e in events[2:]]
    current = broker.subscribe(everything, last_id=broker.last_id)
    assert current.reset is None
    assert current.take() == []


def test_an_id_older_than_the_ring_or_unknown_asks_for_a_reset() -> None:
    broker = EventBroker(buffer=3)
    events = [check_event(broker, n) for n in range(6)]
    too_old = broker.subscribe(everything, last_id=events[0].id)
    assert too_old.reset is not None
    assert too_old.take() == []
    just_kept = broker.subscribe(everything, last_id=events[2].id)
    assert just_kept.reset is None
    assert [e.id for e in just_kept.take()] == [e.id for e in events[3:]]
    unknown = broker.subscribe(everything, last_id=broker.last_id + 1000)
    assert unknown.reset is not None


def test_the_filter_applies_to_live_and_replayed_events() -> None:
    broker = EventBroker()
    check_event(broker, 0, map_name="secret")
    mark = check_event(broker, 1, map_name="public").id - 2
    sub = broker.subscribe(lambda e: e.map == "public", last_id=mark)
    check_event(broker, 2, map_name="secret")
    check_event(broker, 3, map_name="public")
    assert [e.data["component"] for e in sub.take()] == ["c1", "c3"]


def test_a_subscriber_that_falls_behind_is_dropped_not_buffered() -> None:
    broker = EventBroker(client_queue=4)
    slow = broker.subscribe(everything)
    fast = broker.subscribe(everything)
    for n in range(3):
        check_event(broker, n)
    assert len(fast.take()) == 3
    for n in range(3, 8):
        check_event(broker, n)
        fast.take()
    assert slow.ended is not None
    assert "behind" in slow.ended
    assert slow.backlog == 0  # what it had queued is freed
    assert fast.ended is None
    assert broker.subscribers == 1
    assert broker.dropped == 1


def test_resuming_past_more_than_a_queue_holds_is_a_reset() -> None:
    broker = EventBroker(buffer=100, client_queue=4)
    start = check_event(broker, 0).id
    for n in range(1, 20):
        check_event(broker, n)
    sub = broker.subscribe(everything, last_id=start)
    assert sub.reset is not None
    assert sub.ended is None
    assert sub.take() == []


def test_waiting_wakes_on_an_event_and_closing_ends_every_stream() -> None:
    async def main() -> None:
        broker = EventBroker()
        sub = broker.subscribe(everything)
        assert await sub.wait(0.01) is False  # nothing yet: the caller sends a heartbeat
        asyncio.get_running_loop().call_soon(check_event, broker, 1)
        assert await sub.wait(30) is True
        assert len(sub.take()) == 1
        broker.close()
        assert await sub.wait(30) is True
        assert sub.ended is not None
        late = broker.subscribe(everything)
        assert late.ended is not None

    asyncio.run(main())


def test_an_unknown_kind_is_refused() -> None:
    broker = EventBroker()
    with pytest.raises(ValueError, match="gossip"):
        broker.publish("gossip", {})
    assert wire(None, "reset", {"a": 1}) == b'event: reset\ndata: {"a":1}\n\n'
