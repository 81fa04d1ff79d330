from django.apps import AppConfig


class QuizzesConfig(AppConfig):
    name = "quizzes"
    verbose_name = "Selection quizzes and vendors"

    def ready(self) -> None:
        # Batches that name a quiz (or whose focus a quiz is required for) refuse annotators without a pass.
        from annotation.selectors import register_qualification_check

        from .selectors import quiz_requirement_refusal

        register_qualification_check(quiz_requirement_refusal)

        # Sections whose time ran out are closed by the reconciler, for candidates who never came back.
        from core import jobs

        from .services import attempts_expire_overdue

        jobs.register_step("quizzes.close_overdue_sections", lambda now: attempts_expire_overdue(now=now))
