"""bench quality's summary and its person bootstrap, on hand-made rows (no training)."""
import numpy as np
import pytest

from maskctl.commands.bench_quality import DataSet, eval_resampling, summarise


def row(data, seed, plain, ours):
    return {"data": data, "train_seed": seed, "plain_f1": plain, "maskctl_f1": ours, "gap": ours - plain}


ROWS = [row("real/seed0", 0, 0.50, 0.60), row("real/seed0", 1, 0.52, 0.55), row("hard/seed0", 0, 0.30, 0.45)]


def test_summary_means_worsts_and_seed_spread():
    summary = summarise(ROWS)
    assert summary["mean_gap"] == pytest.approx((0.10 + 0.03 + 0.15) / 3) and summary["worst_gap"] == pytest.approx(0.03)
    assert summary["worst_maskctl_f1"] == 0.45 and summary["mean_plain_f1"] == pytest.approx(0.44)
    assert summary["maskctl_seed_spread"] == pytest.approx(0.05) and summary["plain_seed_spread"] == pytest.approx(0.02)
    assert summary["mean_gap_interval"] is None  # no draws, no interval


def test_mean_gap_interval_averages_each_draw_over_the_cells():
    draws = [np.array([0.0, 0.1, 0.2, 0.3]), np.array([0.2, 0.1, 0.0, 0.1]), np.array([0.1, 0.1, 0.1, 0.2])]
    low, high = summarise(ROWS, draws)["mean_gap_interval"]
    means = (draws[0] + draws[1] + draws[2]) / 3  # draw b of every cell together (cells of a data set share resample b)
    assert (low, high) == pytest.approx((np.percentile(means, 2.5), np.percentile(means, 97.5)))
    # one cell without draws (its eval people unknown): no interval for the mean either
    assert summarise(ROWS, [draws[0], None, draws[2]])["mean_gap_interval"] is None


def test_resampling_needs_known_people(tmp_path):
    (tmp_path / "answers.csv").write_text("ImageID,ans\nb.jpg,1\na.jpg,0\nc.jpg,2\n")
    unknown = DataSet("mine", tmp_path, tmp_path, tmp_path)
    assert eval_resampling(unknown, seed=0) is None
    known = DataSet("mine", tmp_path, tmp_path, tmp_path, people={"a.jpg": "p1", "b.jpg": "p1", "c.jpg": "p2"})
    resampling = eval_resampling(known, seed=0, draws=50)
    assert resampling.ids == ["a.jpg", "b.jpg", "c.jpg"] and resampling.truth == [0, 1, 2]
    for images in resampling.resamples:  # a.jpg and b.jpg are one person: drawn together
        assert np.sum(images == 0) == np.sum(images == 1)
