"""The declarations of the generated reports (see icd_hf.evaluation.reports); benchmarks/report.py runs them."""
