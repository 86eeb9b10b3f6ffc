"""The store's kept refusals on SQLite and PostgreSQL: listed with their row ids, and an accepted one moves to
the events in one transaction (its row gone, the others kept)."""

from pathlib import Path

import pytest
from test_link_store import event, postgres_url  # noqa: F401  (the PostgreSQL server fixture)

from edge.hq.store import Batch, EventStore, Rejection


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_accepting_a_refusal_moves_it_to_the_events(backend: str, tmp_path: Path, request) -> None:  # type: ignore[no-untyped-def]
    target = str(tmp_path / "hq.sqlite") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    store = EventStore.open(target)
    try:
        at = "2025-01-01T10:00:00.000Z"
        store.write(Batch(rejections=[Rejection(at, f"edge/v1/devices/a/events/match/{n}", "unknown_sender",
                                                f"payload {n}".encode()) for n in range(3)]))
        kept = store.refused()
        assert [r.payload for _, r in kept] == [b"payload 0", b"payload 1", b"payload 2"]
        row_id = kept[1][0]
        assert store.accept_refused(row_id, Batch(events=[event("e-1", "a", at)])) == 1
        assert [e.event_id for e in store.events()] == ["e-1"]
        assert [r.payload for _, r in store.refused()] == [b"payload 0", b"payload 2"]
        with pytest.raises(ValueError):
            store.accept_refused(kept[0][0], Batch(rejections=[kept[0][1]]))
    finally:
        store.close()
