"""The shared paper-table module: spellings, cells, and the pair-layout CSV reader on a hand-written table."""

from __future__ import annotations

from pathlib import Path

import pytest

from icd_hf.paper import (
    PAPER_NAMES,
    find_paper_table,
    method_display_name,
    normalise_name,
    paper_model_name,
    parse_cell,
    parse_pair_table,
    read_paper_csv,
)

HAND_TABLE = """teacher,WRN-40-2,ResNet-32x4
student,WRN-16-2,ShuffleNet-v2

teacher_acc,75.61, 79.42
student_vanilla_acc,73.26,71.82
KD,74.92,n/a
CRD+KD,75.64
"""


def test_names_map_round_trips_through_normalisation() -> None:
    # Every paper spelling maps back to exactly one zoo name once both are normalised.
    back = {normalise_name(paper): zoo for zoo, paper in PAPER_NAMES.items()}
    assert len(back) == len(PAPER_NAMES)
    for zoo, paper in PAPER_NAMES.items():
        assert paper_model_name(zoo) == paper
        assert back[normalise_name(paper)] == zoo
        assert normalise_name(zoo.replace("_", "")) == normalise_name(paper)
    assert normalise_name("ResNet-32x4") == normalise_name("resnet-32x4") == "resnet32x4"
    assert paper_model_name("not_a_zoo_model") == "not_a_zoo_model"


def test_method_display_name() -> None:
    assert method_display_name("icd+kd") == "ICD+KD"
    assert method_display_name("kd+crd") == "CRD+KD"
    assert method_display_name("kd+crd", kd_last=False) == "KD+CRD"
    assert method_display_name(" fitnet ") == "FitNet"
    with pytest.raises(ValueError, match="Empty method name"):
        method_display_name("+")


def test_parse_cell() -> None:
    assert parse_cell(" 75.61 ") == 75.61
    assert parse_cell("n/a") is None
    assert parse_cell("") is None
    assert parse_cell("-") is None
    assert parse_cell("nan") is None


def test_read_hand_written_pair_table(tmp_path: Path) -> None:
    path = tmp_path / "table9_hand.csv"
    path.write_text(HAND_TABLE)
    rows = read_paper_csv(path)
    assert len(rows) == 6  # the blank line is dropped
    assert rows[2] == ["teacher_acc", "75.61", "79.42"]  # cells are stripped
    table = parse_pair_table(rows, path)
    assert table.teachers == ["WRN-40-2", "ResNet-32x4"]
    assert table.students == ["WRN-16-2", "ShuffleNet-v2"]
    assert table.rows["teacher_acc"] == [75.61, 79.42]
    assert table.rows["KD"] == [74.92, None]  # n/a -> None
    assert table.rows["CRD+KD"] == [75.64, None]  # a short row is padded with None
    assert list(table.rows) == ["teacher_acc", "student_vanilla_acc", "KD", "CRD+KD"]
    assert table.lookup("crd+kd") == [75.64, None]  # spelling-insensitive
    assert table.lookup("ICD+KD") is None
    assert find_paper_table("table9", tmp_path) == path
    assert find_paper_table("table1", tmp_path) is None


def test_pair_table_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no 'student' row"):
        parse_pair_table([["teacher", "WRN-40-2"], ["KD", "74.9"]], "t.csv")
    with pytest.raises(ValueError, match="first row should be 'teacher'"):
        parse_pair_table([["task", "teacher", "student_vanilla"]], "t3.csv")
