"""A Batcher with a bound drops what does not fit and says so; without one it keeps everything."""

from brokerproject.batching import Batcher


def test_a_bounded_batcher_drops_beyond_its_bound_and_counts_each_drop():
    handled, dropped = [], []
    batcher = Batcher(
        "bounded-test", handled.extend, interval=lambda: 3600, max_queued=lambda: 5, on_drop=lambda: dropped.append(1)
    )
    for item in range(12):
        batcher.add(item)
    batcher.flush()
    assert handled == [0, 1, 2, 3, 4] and len(dropped) == 7


def test_an_unbounded_batcher_keeps_everything():
    handled = []
    batcher = Batcher("unbounded-test", handled.extend, interval=lambda: 3600)
    for item in range(1200):
        batcher.add(item)
    batcher.flush()
    assert handled == list(range(1200))
