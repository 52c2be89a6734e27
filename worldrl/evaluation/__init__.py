"""Evaluation: open-loop fidelity of world models, real-env returns, summary statistics and plots.

Plots import matplotlib, so they live in ``worldrl.evaluation.plots`` and are not imported here.
"""

from worldrl.evaluation.fidelity import (
    FidelityReport,
    HorizonMetrics,
    TrajectoryExamples,
    check_dataset_matches,
    compare_reports,
    evaluate_fidelity,
)
from worldrl.evaluation.real_returns import ReturnStats, evaluate_on_real_env
from worldrl.evaluation.stats import Summary, mean_ci, median_iqr, student_t_ppf, summarize

__all__ = [
    "FidelityReport",
    "HorizonMetrics",
    "ReturnStats",
    "Summary",
    "TrajectoryExamples",
    "check_dataset_matches",
    "compare_reports",
    "evaluate_fidelity",
    "evaluate_on_real_env",
    "mean_ci",
    "median_iqr",
    "student_t_ppf",
    "summarize",
]
