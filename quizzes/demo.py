"""The selection quizzes in the demo workspace (called from annotation.demo.load_demo).

The Llama 2 template is loaded and published; the safety batch requires the sensitive-topics test;
the demo's existing annotators count as qualified (passes recorded by the researcher); manager-acme
has invited `candidate`, who has not taken anything yet; and `candidate-failed` (Northwind) took
the sensitive-topics test and failed it, so the safety batch stays closed to them.
"""

from django.db import transaction

from accounts.models import Role, User, Vendor
from annotation.models import Batch

from . import services
from .models import Attempt, Question, Quiz

SENSITIVE_TOPICS = "llama2-sensitive-topics"
DEMO_PASSWORD = "preflab-demo"
QUALIFIED_ANNOTATORS = ("annotator", "annotator2", "annotator3", "annotator4", "annotator5")


def _invited(*, username: str, manager: User, password: str) -> User:
    existing = User.objects.filter(username=username).first()
    if existing is not None:
        return existing
    (invitation,) = services.invitations_create(
        invited_by=manager, vendor=manager.vendor, emails=[f"{username}@example.org"]
    )
    return services.invitation_accept(token=invitation.token, username=username, password=password)


def _fail_sensitive_topics(candidate: User, quiz: Quiz) -> None:
    """Take the test with every label and ranking against the reference, through the real services."""
    if Attempt.objects.filter(candidate=candidate, quiz__slug=quiz.slug).exists():
        return
    attempt = services.attempt_start(candidate=candidate, quiz=quiz).attempt
    for _ in range(quiz.sections.count()):
        section = services.section_start(candidate=candidate, attempt_id=attempt.pk)
        for question in Question.objects.filter(pk__in=section.question_order):
            if question.kind == "label":
                wrong = next(label for label in question.content["labels"] if label != question.key)
                services.answer_save(
                    candidate=candidate, attempt_id=attempt.pk, question_id=question.pk, value={"label": wrong}
                )
        services.section_submit(candidate=candidate, attempt_id=attempt.pk, confirm_incomplete=True)


@transaction.atomic
def load_quiz_demo(*, safety_batch: Batch) -> dict:
    researcher = User.objects.get(username="researcher")
    quizzes = services.llama2_template_load(created_by=researcher, publish=True)
    sensitive = next(q for q in quizzes if q.slug == SENSITIVE_TOPICS)
    services.batch_requirement_add(batch=safety_batch, quiz=sensitive)
    for annotator in User.objects.filter(username__in=QUALIFIED_ANNOTATORS, role=Role.ANNOTATOR):
        services.qualification_grant(
            quiz=sensitive,
            annotator=annotator,
            granted_by=researcher,
            note="Demo: qualified before Preflab's quizzes were set up.",
        )
    candidate = _invited(
        username="candidate", manager=User.objects.get(username="manager-acme"), password=DEMO_PASSWORD
    )
    failed = _invited(
        username="candidate-failed", manager=User.objects.get(username="manager-northwind"), password=DEMO_PASSWORD
    )
    _fail_sensitive_topics(failed, sensitive)
    acme = Vendor.objects.get(name="Acme Annotation")
    summary = (
        f"  selection quizzes: {len(quizzes)} Llama 2 tests; {safety_batch.name!r} requires {sensitive.title!r}\n"
        f"  candidate          invited by manager-acme ({acme}), has not taken a quiz yet\n"
        f"  candidate-failed   failed {sensitive.title!r}: gets no safety comparisons"
    )
    return {"quizzes": quizzes, "people": [candidate, failed], "summary": summary}
