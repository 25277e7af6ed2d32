"""gateway.ids: request ids are UUIDv7, unique, and sort by time."""

from __future__ import annotations

import time
import uuid

from gateway.ids import new_id


def test_a_request_id_is_a_uuid7_of_now():
    before = time.time_ns() // 1_000_000
    text = new_id()
    after = time.time_ns() // 1_000_000
    u = uuid.UUID(text)
    assert str(u) == text and u.version == 7 and u.variant == uuid.RFC_4122
    assert before <= u.int >> 80 <= after


def test_request_ids_are_unique_and_sort_by_time():
    ids = []
    for _ in range(3):
        ids += [new_id() for _ in range(10_000)]
        time.sleep(0.002)
    assert len(set(ids)) == len(ids)
    stamps = [uuid.UUID(i).int >> 80 for i in ids]
    assert stamps == sorted(stamps)
