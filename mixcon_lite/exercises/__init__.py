"""Checkers for the chapters' exercises: ``check_<name>(answer)`` returns a :class:`CheckResult`.

One module per chapter (``ch00`` ... ) beside a small :mod:`.core`; every checker is also importable
from here, so a notebook writes ``from mixcon_lite import exercises`` and
``exercises.check_total_variation(my_tv)``.

A checker never raises because an answer is wrong: it returns a verdict whose message says what
was expected and what was found, so a student can act on it. In a notebook the verdict shows as
``PASS: ...`` or ``NOT YET: ...``; ``bool(result)`` is ``result.passed``. A checker recomputes from
the student's function or model; it never trusts typed-in numbers alone.
"""
from .core import CheckResult, as_1d, as_number, call_student
from .ch00 import check_total_variation, check_psnr, check_deeper_cut
from .ch01 import check_delta, check_linear_delta_bound, check_unfittable
from .ch02 import check_clause_gadget, check_soundness_counterexample, check_restarts_needed
from .ch03 import check_consistency_loss, check_optimal_distance, check_collapse
from .ch04 import check_rmle_objective, check_safest_cut, check_noise_defence
from .ch05 import check_within_pairs, check_sweet_spot, check_break_defence
from .ch06 import check_idlg_label, check_cosine_distance, check_pruning_defence
from .ch07 import check_restore_labels, check_repeat_accuracy, check_bn_loss
from .ch08 import check_linear_lambda, check_homogeneity_degree, check_kkt_loss, check_nnls_residual
from .ch09 import check_hutchinson, check_auc, check_dp_auc_bound
from .ch10 import check_tv_l2, check_class_statistics, check_leaky_set

__all__ = ['CheckResult', 'as_1d', 'as_number', 'call_student', 'check_total_variation', 'check_psnr', 'check_deeper_cut', 'check_delta', 'check_linear_delta_bound', 'check_unfittable', 'check_clause_gadget', 'check_soundness_counterexample', 'check_restarts_needed', 'check_consistency_loss', 'check_optimal_distance', 'check_collapse', 'check_rmle_objective', 'check_safest_cut', 'check_noise_defence', 'check_within_pairs', 'check_sweet_spot', 'check_break_defence', 'check_idlg_label', 'check_cosine_distance', 'check_pruning_defence', 'check_restore_labels', 'check_repeat_accuracy', 'check_bn_loss', 'check_linear_lambda', 'check_homogeneity_degree', 'check_nnls_residual', 'check_kkt_loss', 'check_hutchinson', 'check_auc', 'check_dp_auc_bound', 'check_tv_l2', 'check_class_statistics', 'check_leaky_set']
