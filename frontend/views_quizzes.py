"""Pages of the selection quizzes: candidates take them, researchers author and review, vendor managers invite.

The quiz-taking page is a shell driven by quiz.js through the same API anyone can use; the other
pages are server-rendered forms that call one service each.
"""

import json

from django.contrib import messages
from django.contrib.auth import login
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation import selectors as annotation_selectors
from config.exceptions import DomainError
from quizzes import clock, selectors, services
from quizzes.documents import quiz_document
from quizzes.models import RequiredFocus

from .views import annotator_required, manager_required, researcher_required


def _fail(request, exc: DomainError) -> None:
    """Show a refusal; when it lists errors, one line each under its headline."""
    errors = exc.extra.get("errors", [])
    if not errors:
        messages.error(request, exc.detail)
        return
    messages.error(request, exc.detail.split(":")[0] + ":")
    for line in errors[:20]:
        messages.error(request, line)
    if len(errors) > 20:
        messages.error(request, f"… and {len(errors) - 20} more.")


def _short_title(title: str) -> str:
    """A column heading: the part of the title before " · " ("Llama 2 test 1"), or the title cut short."""
    head = title.split(" · ")[0]
    return head if len(head) <= 24 else head[:22] + "…"


# ---------------------------------------------------------------- candidates


@annotator_required
def quiz_list(request):
    standings = selectors.candidate_quizzes(request.user)
    rows = [{"standing": s, "batches": selectors.batches_requiring(s.quiz)} for s in standings]
    return render(request, "frontend/quizzes/list.html", {"rows": rows})


@annotator_required
@require_POST
def quiz_start(request, quiz_id: int):
    quiz = get_object_or_404(selectors.quizzes_for(user=request.user), pk=quiz_id, is_published=True)
    try:
        started = services.attempt_start(candidate=request.user, quiz=quiz)
    except DomainError as exc:
        _fail(request, exc)
        return redirect("quiz-list")
    return redirect("quiz-attempt", started.attempt.pk)


@annotator_required
def quiz_attempt(request, attempt_id: int):
    attempt = get_object_or_404(selectors.attempts_for(request.user), pk=attempt_id, candidate=request.user)
    return render(request, "frontend/quizzes/attempt.html", {"attempt": attempt})


# ---------------------------------------------------------------- authors


@researcher_required
def manage_quizzes(request):
    if request.method == "POST":
        try:
            if request.POST.get("action") == "template":
                quizzes = services.llama2_template_load(created_by=request.user, publish=False, if_missing=False)
                messages.success(
                    request, f"Added the {len(quizzes)} Llama 2 tests (not published yet: review them first)."
                )
            else:
                upload = request.FILES.get("file")
                document = upload.read() if upload else request.POST.get("document", "")
                if not document:
                    messages.error(request, "Choose a JSON file or paste a quiz to import.")
                    return redirect("quiz-manage")
                quizzes = services.quizzes_import(
                    document=document, created_by=request.user, publish=bool(request.POST.get("publish"))
                )
                names = ", ".join(f"{q.title} (v{q.version})" for q in quizzes)
                messages.success(request, f"Imported {names}.")
        except DomainError as exc:
            _fail(request, exc)
        return redirect("quiz-manage")
    return render(
        request,
        "frontend/quizzes/manage_list.html",
        {
            "quizzes": selectors.quizzes_with_attempts(user=request.user),
            "pending_reviews": selectors.pending_review_count(),
        },
    )


def _settings_changes(post) -> tuple[dict, dict, dict]:
    def number(name: str) -> int | None:
        value = post.get(name, "").strip()
        if value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise DomainError(f"{name.replace('_', ' ')} must be a whole number.", field=name) from None

    changes = {
        "title": post.get("title", "").strip(),
        "description": post.get("description", "").strip(),
        "time_limit_minutes": number("time_limit_minutes"),
        "max_attempts": number("max_attempts"),
        "shuffle_questions": bool(post.get("shuffle_questions")),
        "show_section_scores": bool(post.get("show_section_scores")),
        "required_for_focus": post.get("required_for_focus", "none"),
        "is_published": bool(post.get("is_published")),
    }
    criteria, limits = {}, {}
    for name, value in post.items():
        if name.startswith("threshold-"):
            try:
                criteria.setdefault(int(name.split("-")[1]), {})["threshold"] = float(value)
            except ValueError:
                raise DomainError(f"The threshold {value!r} is not a number.", field=name) from None
        elif name.startswith("op-"):
            criteria.setdefault(int(name.split("-")[1]), {})["op"] = value
        elif name.startswith("limit-"):
            limits[int(name.split("-")[1])] = number(name)
    return changes, criteria, limits


@researcher_required
def manage_quiz(request, quiz_id: int):
    quiz = get_object_or_404(selectors.quizzes_for(user=request.user), pk=quiz_id)
    if request.method == "POST":
        action = request.POST.get("action", "settings")
        try:
            if action == "settings":
                changes, criteria, limits = _settings_changes(request.POST)
                services.quiz_settings_update(quiz=quiz, changes=changes, criteria=criteria, section_time_limits=limits)
                messages.success(request, "Settings saved. Thresholds apply to every result decided from now on.")
            elif action == "require":
                batch = get_object_or_404(annotation_selectors.batches_for(request.user), pk=request.POST.get("batch"))
                services.batch_requirement_add(batch=batch, quiz=quiz)
                messages.success(request, f"{batch.name!r} now requires {quiz.title!r}.")
            elif action == "unrequire":
                batch = get_object_or_404(annotation_selectors.batches_for(request.user), pk=request.POST.get("batch"))
                services.batch_requirement_remove(batch=batch, quiz=quiz)
                messages.success(request, f"{batch.name!r} no longer names {quiz.title!r}.")
        except DomainError as exc:
            _fail(request, exc)
        return redirect("quiz-manage-detail", quiz.pk)
    return render(
        request,
        "frontend/quizzes/manage_detail.html",
        {"quiz": quiz, "focus_choices": RequiredFocus.choices, **selectors.quiz_authoring(quiz=quiz)},
    )


@researcher_required
def manage_quiz_export(request, quiz_id: int):
    quiz = get_object_or_404(selectors.quizzes_for(user=request.user), pk=quiz_id)
    response = HttpResponse(
        json.dumps(quiz_document(quiz), indent=2, ensure_ascii=False) + "\n", content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="{quiz.slug}-v{quiz.version}.json"'
    return response


@researcher_required
def manage_quiz_json(request, quiz_id: int):
    """Edit a quiz's content as JSON; saving makes a new version (attempts keep the version they took)."""
    quiz = get_object_or_404(selectors.quizzes_for(user=request.user), pk=quiz_id)
    text = json.dumps(quiz_document(quiz), indent=2, ensure_ascii=False)
    errors: list[str] = []
    if request.method == "POST":
        text = request.POST.get("document", "")
        try:
            (created,) = services.quizzes_import(document=text, created_by=request.user, publish=False)
        except DomainError as exc:
            errors = exc.extra.get("errors") or [exc.detail]
        except ValueError:
            errors = ["Edit one quiz at a time here; import bundles from the quiz list."]
        else:
            messages.success(request, f"Saved as version {created.version} (not published yet).")
            return redirect("quiz-manage-detail", created.pk)
    return render(request, "frontend/quizzes/manage_json.html", {"quiz": quiz, "text": text, "errors": errors})


# ---------------------------------------------------------------- reviewers


@researcher_required
def review_queue(request):
    if request.method == "POST":
        try:
            services.review_grade(
                reviewer=request.user,
                review_id=int(request.POST.get("review", 0)),
                score=int(request.POST.get("score") or 0),
                comment=request.POST.get("comment", ""),
            )
            messages.success(request, "Grade saved.")
        except ValueError:
            messages.error(request, "Choose a grade from 1 to 5.")
        except DomainError as exc:
            _fail(request, exc)
            return redirect(f"{reverse('quiz-reviews')}?review={request.POST.get('review', '')}")
        return redirect("quiz-reviews")
    # Sections that ran out are closed by the reconciler (core.jobs), not by reading this page.
    chosen = request.GET.get("review", "")
    desk = selectors.review_desk(review_id=int(chosen) if chosen.isdigit() else None)
    return render(
        request,
        "frontend/quizzes/review.html",
        {
            "review": desk.review,
            "pending": desk.pending,
            "counts": desk.counts,
            "siblings": desk.siblings,
            "scores": [
                (5, "Excellent"),
                (4, "Good"),
                (3, "Acceptable"),
                (2, "Poor"),
                (1, "Unacceptable"),
            ],
        },
    )


# ---------------------------------------------------------------- vendors


@manager_required
def vendor_candidates(request):
    user = request.user
    vendors = selectors.vendors_visible_to(user)
    vendor_id = request.GET.get("vendor") or request.POST.get("vendor") or user.vendor_id
    vendor = selectors.vendor_for(user=user, vendor_id=vendor_id)
    if request.method == "POST":
        if vendor is None:
            messages.error(request, "Choose the vendor to invite candidates for.")
            return redirect("vendor-candidates")
        try:
            upload = request.FILES.get("file")
            if upload is not None:
                invitations = services.invitations_from_csv(invited_by=user, vendor=vendor, source=upload.read())
            else:
                emails = [e for e in request.POST.get("emails", "").replace(",", "\n").splitlines() if e.strip()]
                invitations = services.invitations_create(invited_by=user, vendor=vendor, emails=emails)
            request.session["fresh_invitations"] = [i.pk for i in invitations]
            messages.success(
                request,
                f"{len(invitations)} invitation{'s' if len(invitations) != 1 else ''} ready: "
                "send each person their link.",
            )
        except DomainError as exc:
            _fail(request, exc)
        return redirect(f"{reverse('vendor-candidates')}?vendor={vendor.pk}")
    scope = vendor.pk if vendor else None
    quizzes, rows = selectors.people_report(user, scope)
    fresh_ids = request.session.pop("fresh_invitations", [])
    invitations = list(selectors.invitations_for(user, scope)[:200])
    now = clock.now()
    return render(
        request,
        "frontend/quizzes/vendor.html",
        {
            "vendor": vendor,
            "vendors": vendors if user.is_researcher else [],
            "quizzes": [{"quiz": q, "label": _short_title(q.title)} for q in quizzes],
            "rows": rows,
            "pass_rates": selectors.pass_rates(user, scope),
            "invitations": [
                {
                    "row": i,
                    "status": i.status_at(now),
                    "link": request.build_absolute_uri(reverse("quiz-invitation-accept", args=[i.token])),
                    "fresh": i.pk in fresh_ids,
                }
                for i in invitations
            ],
        },
    )


@manager_required
def vendor_invitations_csv(request):
    """The vendor's invitations with their links, to mail-merge."""
    import io

    from core import csv_safe

    buffer = io.StringIO()
    writer = csv_safe.writer(buffer)
    writer.writerow(["email", "vendor", "status", "link", "expires_at"])
    now = clock.now()
    for invitation in selectors.invitations_for(request.user, request.GET.get("vendor") or None):
        link = request.build_absolute_uri(reverse("quiz-invitation-accept", args=[invitation.token]))
        writer.writerow(
            [invitation.email, invitation.vendor, invitation.status_at(now), link, invitation.expires_at.isoformat()]
        )
    response = HttpResponse(buffer.getvalue(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="invitations.csv"'
    return response


def invitation_accept(request, token: str):
    """Sign-up from an invitation link (no log-in needed)."""
    invitation = selectors.invitation_by_token(token=token)
    if invitation is None:
        raise Http404("This invitation link is not valid; ask your vendor manager for a new one.")
    if request.user.is_authenticated and request.user == invitation.user:
        return redirect("quiz-list")
    error = ""
    username = ""
    if request.method == "POST":
        username = request.POST.get("username", "").strip()
        if request.POST.get("password") != request.POST.get("password2"):
            error = "The two passwords differ; type the same password twice."
        else:
            try:
                user = services.invitation_accept(
                    token=token, username=username, password=request.POST.get("password", "")
                )
            except DomainError as exc:
                error = exc.detail
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, f"Welcome to Preflab, {user.username}. Start with the selection quizzes.")
                return redirect("quiz-list")
    status = invitation.status_at(clock.now())
    return render(
        request,
        "frontend/quizzes/accept.html",
        {"invitation": invitation, "status": status, "error": error, "username": username},
        status=410 if status == "expired" else 200,
    )
