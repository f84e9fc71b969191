"""io.write_csv_rows writes what pandas' to_csv would (predict writes its CSVs without pandas)."""
import numpy as np
import pandas as pd

from maskctl.core import io


def test_rows_are_laid_out_as_pandas_writes_them(tmp_path):
    ids = ["a.jpg", "with,comma.jpg", 'with"quote.jpg']
    probs = np.array([[0.125, 1e-7], [0.333333333, 0.9999999], [0.5, 0.0]], dtype=np.float32)
    io.write_csv_rows(tmp_path / "rows.csv", ["ImageID", "p0", "p1"], ([i, *("%.6g" % p for p in row)] for i, row in zip(ids, probs.tolist())))
    frame = pd.concat([pd.DataFrame({"ImageID": ids}), pd.DataFrame(probs, columns=["p0", "p1"])], axis=1)
    frame.to_csv(tmp_path / "pandas.csv", index=False, float_format="%.6g")
    assert (tmp_path / "rows.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()


def test_no_temp_file_is_left_and_an_existing_file_is_replaced_whole(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_text("old\n")
    io.write_csv_rows(path, ["ImageID", "ans"], [("a.jpg", 3)])
    assert path.read_text() == "ImageID,ans\na.jpg,3\n"
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]
