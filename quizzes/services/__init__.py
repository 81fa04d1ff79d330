"""Writes of the selection quizzes, one module per concern:

- `authoring`: import and the Llama 2 template, settings and thresholds, batch requirements;
- `attempts`: attempts under time limits (start, sections, autosave, submit, expiry);
- `reviews`: grading written responses, recording qualifications earned elsewhere;
- `invitations`: vendors' invitation links, from a list or a CSV, and accepting one;
- `results`: an attempt's tallies, verdict and stored result, shared by attempts and reviews.

Concurrency: every change to an attempt happens under its row lock (SELECT ... FOR UPDATE), so
a save racing the deadline, two tabs, or two reviewers grading the last answer settle once.

Callers import from here (`from quizzes.services import attempt_start`); the modules are the layout.
"""

from .attempts import (
    AttemptStart,
    SavedAnswer,
    answer_save,
    attempt_refresh,
    attempt_start,
    attempts_expire_overdue,
    section_start,
    section_submit,
)
from .authoring import (
    LLAMA2_TEMPLATE,
    SETTING_FIELDS,
    batch_requirement_add,
    batch_requirement_remove,
    llama2_template_load,
    quiz_settings_update,
    quizzes_import,
)
from .invitations import (
    MAX_INVITATIONS_PER_REQUEST,
    invitation_accept,
    invitations_create,
    invitations_from_csv,
)
from .reviews import qualification_grant, review_grade

__all__ = [
    "LLAMA2_TEMPLATE",
    "MAX_INVITATIONS_PER_REQUEST",
    "SETTING_FIELDS",
    "AttemptStart",
    "SavedAnswer",
    "answer_save",
    "attempt_refresh",
    "attempt_start",
    "attempts_expire_overdue",
    "batch_requirement_add",
    "batch_requirement_remove",
    "invitation_accept",
    "invitations_create",
    "invitations_from_csv",
    "llama2_template_load",
    "qualification_grant",
    "quiz_settings_update",
    "quizzes_import",
    "review_grade",
    "section_start",
    "section_submit",
]
