"""What maskctl reads and writes as probabilities: finite, each within 0..1, each row summing to 1
(schema.probability_problem; predict and ensemble write nothing else)."""
import pytest

from maskctl.core.errors import MaskctlError
from maskctl.core.schema import probability_problem, read_csv


@pytest.mark.parametrize("row, problem", [
    ("0.5,0.6", "row 2: the probabilities sum to 1.1, not 1"),
    ("0.2,0.2", "row 2: the probabilities sum to 0.4, not 1"),
    ("0,0", "row 2: the probabilities sum to 0, not 1"),
])
def test_probability_rows_must_sum_to_one(tmp_path, row, problem):
    """What predict and ensemble write is held to the same check (schema.probability_problem)."""
    path = tmp_path / "probs.csv"
    path.write_text(f"ImageID,p0,p1\na.jpg,{row}\nb.jpg,0.25,0.75\n")
    with pytest.raises(MaskctlError, match=problem):
        read_csv(path, {"ImageID": "text"}, probabilities=True)


@pytest.mark.parametrize("probs, expected", [
    ([[0.3, 0.7], [0.5, 0.5]], None),
    ([[0.3, 0.7], [float("nan"), 1.0]], (1, "p0 is nan, not a probability from 0 to 1")),
    ([[1.5, -0.5]], (0, "p0 is 1.5, not a probability from 0 to 1")),
    ([[0.0, -1e-9]], (0, "p1 is -1e-09, not a probability from 0 to 1")),
    ([[1e308, 1e308]], (0, "p0 is 1e+308, not a probability from 0 to 1")),
    ([[0.5, 0.5 + 2e-3]], (0, "the probabilities sum to 1.002, not 1")),
    ([[0.5, 0.5 + 5e-4]], None),
])
def test_probability_problem_names_the_first_bad_row(probs, expected):
    assert probability_problem(probs) == expected
