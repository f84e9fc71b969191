import numpy as np
import pytest

from maskctl.core.errors import MaskctlError
from maskctl.data import labels as L

# (class, mask, gender, age) for all 18 classes, written out by hand from class = mask*6 + gender*3 + age.
ALL_CLASSES = [
    (0, 0, 0, 0), (1, 0, 0, 1), (2, 0, 0, 2), (3, 0, 1, 0), (4, 0, 1, 1), (5, 0, 1, 2),
    (6, 1, 0, 0), (7, 1, 0, 1), (8, 1, 0, 2), (9, 1, 1, 0), (10, 1, 1, 1), (11, 1, 1, 2),
    (12, 2, 0, 0), (13, 2, 0, 1), (14, 2, 0, 2), (15, 2, 1, 0), (16, 2, 1, 1), (17, 2, 1, 2),
]


@pytest.mark.parametrize("label, mask, gender, age", ALL_CLASSES)
def test_encode_decode_ints(label, mask, gender, age):
    assert L.encode(mask, gender, age) == label
    assert L.decode(label) == (mask, gender, age)


def test_encode_decode_arrays_cover_all_classes():
    table = np.array(ALL_CLASSES)
    labels, mask, gender, age = table.T
    np.testing.assert_array_equal(L.encode(mask, gender, age), labels)
    m, g, a = L.decode(np.arange(18))
    np.testing.assert_array_equal(m, mask)
    np.testing.assert_array_equal(g, gender)
    np.testing.assert_array_equal(a, age)
    assert L.NUM_CLASSES == 18


def test_class_name():
    assert L.class_name(0) == "wear/male/<30"
    assert L.class_name(17) == "not_wear/female/60+"
    assert L.class_name(10, (25, 40)) == "incorrect/female/25-39"


@pytest.mark.parametrize("age, band", [(0, 0), (18, 0), (29, 0), (30, 1), (45, 1), (59, 1), (60, 2), (61, 2), (90, 2)])
def test_age_band_default_edges(age, band):
    assert L.age_band(age) == band


def test_age_band_array_default_edges():
    ages = np.array([18, 29, 30, 59, 60])
    out = L.age_band(ages)
    np.testing.assert_array_equal(out, [0, 0, 1, 1, 2])
    assert out.dtype == np.int64


def test_age_band_custom_edges():
    assert L.age_band(57, (30, 58)) == 1
    assert L.age_band(58, (30, 58)) == 2
    assert L.age_band(59, (30, 58)) == 2
    assert L.age_band(29, (30, 58)) == 0
    np.testing.assert_array_equal(L.age_band(np.array([24, 25, 39, 40]), (25, 40)), [0, 1, 1, 2])
    np.testing.assert_array_equal(L.age_band(np.array([57, 58, 60]), (30, 58)), [1, 2, 2])


def test_age_band_names():
    assert L.age_band_names() == ("<30", "30-59", "60+")
    assert L.age_band_names((30, 58)) == ("<30", "30-57", "58+")


@pytest.mark.parametrize("text, expected", [("30,60", (30, 60)), (" 25 , 40 ", (25, 40)), ((30, 58), (30, 58)), ([1, 2], (1, 2))])
def test_parse_age_edges_good(text, expected):
    assert L.parse_age_edges(text) == expected


@pytest.mark.parametrize("text", ["30", "30,60,70", "60,30", "30,30", "a,b", "30;60", "", (30,), (60, 30)])
def test_parse_age_edges_bad(text):
    with pytest.raises(MaskctlError):
        L.parse_age_edges(text)


def test_gender_index():
    assert L.gender_index("male") == 0
    assert L.gender_index(" Female ") == 1
    with pytest.raises(MaskctlError):
        L.gender_index("other")


def _write(tmp_path, text):
    path = tmp_path / "fixes.csv"
    path.write_text(text)
    return path


def test_read_label_fixes_good(tmp_path):
    path = _write(tmp_path, "id,gender,age,swap_mask\n006359,male,,\n001498-1,Female,,\n000020,,,1\n000100,,61,no\n000200,,,yes\n")
    fixes = L.read_label_fixes(path)
    assert fixes == [
        L.LabelFix("006359", "male", None, False),
        L.LabelFix("001498-1", "female", None, False),
        L.LabelFix("000020", None, None, True),
        L.LabelFix("000100", None, 61, False),
        L.LabelFix("000200", None, None, True),
    ]
    assert fixes[0].describe() == "006359: gender->male"
    assert fixes[2].describe() == "000020: swap normal/incorrect_mask"
    assert fixes[3].describe() == "000100: age->61"


def test_read_label_fixes_only_id_and_gender(tmp_path):
    path = _write(tmp_path, "id,gender\n004432,female\n")
    assert L.read_label_fixes(path) == [L.LabelFix("004432", "female", None, False)]


def test_read_label_fixes_keeps_leading_zeros(tmp_path):
    path = _write(tmp_path, "id,age\n000007,45\n")
    assert L.read_label_fixes(path)[0].person_id == "000007"


def test_read_label_fixes_bad_gender(tmp_path):
    path = _write(tmp_path, "id,gender\n000001,man\n")
    with pytest.raises(MaskctlError, match=r"fixes.csv: row 2, column gender"):
        L.read_label_fixes(path)


@pytest.mark.parametrize("age", ["forty", "-3", "4.5", "\u0663\u0660", "\u00b2"])
def test_read_label_fixes_bad_age(tmp_path, age):
    path = _write(tmp_path, f"id,age\n000001,30\n000002,{age}\n")
    with pytest.raises(MaskctlError, match=r"fixes.csv: row 3, column age"):
        L.read_label_fixes(path)


def test_read_label_fixes_unknown_column(tmp_path):
    path = _write(tmp_path, "id,gendr\n000001,male\n")
    with pytest.raises(MaskctlError, match="unknown columns"):
        L.read_label_fixes(path)


def test_read_label_fixes_missing_id_column(tmp_path):
    path = _write(tmp_path, "person,gender\n000001,male\n")
    with pytest.raises(MaskctlError, match=r"lacks column\(s\) id"):
        L.read_label_fixes(path)


def test_read_label_fixes_missing_file(tmp_path):
    with pytest.raises(MaskctlError, match="not found"):
        L.read_label_fixes(tmp_path / "nope.csv")


def test_score_label_uses_the_competition_bands_on_true_ages():
    ages = np.array([29, 30, 57, 58, 59, 60])
    # A 30,58 run teaches 58 and 59 as old; the score still calls them 30-59.
    assert L.encode(0, 1, L.age_band(ages, (30, 58))).tolist() == [3, 4, 4, 5, 5, 5]
    assert L.score_label(0, 1, ages).tolist() == [3, 4, 4, 4, 4, 5]
    assert L.score_label(2, 0, 58) == 13 and L.score_label(2, 0, 60) == 14
