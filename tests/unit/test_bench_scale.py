"""bench-scale's figures: tenths follow the updates' arrival order and never overlap; bytes per
identifier count the graph apart from the event history."""

from __future__ import annotations

from pathlib import Path

from omnid.benchmarks.feed import EncodedEvent
from omnid.benchmarks.scale import compacted_state, saturation_result
from omnid.kafka.stages import Table
from omnid.pipeline.state_store import TableStore


def test_tenths_split_the_shown_events_in_arrival_order_and_rates_follow_their_spans() -> None:
    events = [EncodedEvent(f"e{n}", "web", b"k", b"v") for n in range(100)]
    produced = {f"e{n}": 1_000.0 + n * 0.01 for n in range(100)}
    # The first half is shown at 10 events/s, the second at 20; e0 straggles to the very end.
    shown = {f"e{n}": 1_000.0 + n * 0.1 for n in range(1, 50)}
    shown |= {f"e{n}": 1_005.0 + (n - 50) * 0.05 for n in range(50, 100)}
    shown["e0"] = 1_010.0
    rss = [(1_000.0 + t, (100 + t) * 2**20) for t in range(11)]

    result = saturation_result(events, produced, shown, rss, began=1_000.0)

    tenths = result["tenths"]
    assert [t["events_shown"] for t in tenths] == [10] * 10
    assert sum(t["seconds"] for t in tenths) == result["seconds"] == 10.0
    assert 9 <= tenths[1]["events_per_s"] <= 11 and 19 <= tenths[7]["events_per_s"] <= 21
    assert tenths[0]["p99_ms"] >= 9_990  # e0's own latency, in its production tenth
    assert tenths[-1]["rss_mib"] == 110 and result["last_tenth_vs_first_rss"] > 1


def test_bytes_per_identifier_count_the_graph_apart_from_the_history(tmp_path: Path) -> None:
    sizes = {Table.IDENTIFIERS: 40, Table.PROFILES: 20, Table.HISTORY: 400}
    for table, value_size in sizes.items():
        store = TableStore(tmp_path / table.value)
        store.write(((f"{table.value}:{n}", bytes(value_size)) for n in range(200)), {0: 200})
        store.close()

    state = compacted_state([tmp_path])

    sst = state["sst_bytes"]
    assert state["identifiers"] == state["identifier_entries"] == 200
    assert state["graph_bytes_per_identifier"] == (sst["identifiers"] + sst["profiles"]) / 200
    assert state["bytes_per_identifier"] == sum(sst.values()) / 200
    assert (
        sst["history"] > 0 and state["graph_bytes_per_identifier"] < state["bytes_per_identifier"]
    )
