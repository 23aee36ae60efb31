"""Evaluation tools: linear-probe transfer (paper table 3), logit-correlation analysis (paper figure 1), results
tables in the paper's layout with CRD's average relative improvement, and plots.

Quick use::

    from icd_hf.evaluation import extract_features, train_linear_probe

    train_x, train_y = extract_features(student, stl10_train, batch_size=512, cache_path=".cache/features")
    test_x, test_y = extract_features(student, stl10_test, batch_size=512, cache_path=".cache/features")
    print(train_linear_probe(train_x, train_y, test_x, test_y)["top1"])
"""

from .correlation import (
    correlation_difference,
    logits_correlation,
    plot_correlation_difference,
    plot_correlation_differences,
)
from .features import dataset_fingerprint, extract_features, extract_outputs, model_fingerprint
from .linear_probe import standardise_features, train_linear_probe
from .loading import resolve_model_dir
from .results import (
    TEACHER_ROW,
    VANILLA_ROW,
    Column,
    ResultsTable,
    average_relative_improvement,
    build_results_table,
    default_paper_dir,
    find_paper_table,
    format_markdown,
    load_paper_table,
    load_run_results,
    method_display_name,
    model_display_name,
    plot_results,
    relative_improvement,
    table_to_dict,
)

__all__ = [
    "TEACHER_ROW",
    "VANILLA_ROW",
    "Column",
    "ResultsTable",
    "average_relative_improvement",
    "build_results_table",
    "correlation_difference",
    "dataset_fingerprint",
    "default_paper_dir",
    "extract_features",
    "extract_outputs",
    "find_paper_table",
    "format_markdown",
    "load_paper_table",
    "load_run_results",
    "logits_correlation",
    "method_display_name",
    "model_display_name",
    "model_fingerprint",
    "plot_correlation_difference",
    "plot_correlation_differences",
    "plot_results",
    "relative_improvement",
    "resolve_model_dir",
    "standardise_features",
    "table_to_dict",
    "train_linear_probe",
]
