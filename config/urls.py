from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from accounts import apis as accounts_apis
from accounts import token_apis
from agreement import apis as agreement_apis
from annotation import apis as annotation_apis
from core.routing import IdRouter
from leaderboard import apis as leaderboard_apis
from preference_data import apis as preference_data_apis
from quizzes import apis as quizzes_apis
from rewardmodel import apis as rewardmodel_apis
from sampling import apis as sampling_apis

router = IdRouter()
router.register("batches", annotation_apis.BatchViewSet, basename="batch")
router.register("ratings", annotation_apis.RatingViewSet, basename="rating")
router.register("comparisons", annotation_apis.ComparisonViewSet, basename="comparison")
router.register("agreement-reports", agreement_apis.AgreementReportViewSet, basename="agreement-report")
router.register("people", accounts_apis.PersonViewSet, basename="person")
router.register("vendors", accounts_apis.VendorViewSet, basename="vendor")
router.register("quizzes", quizzes_apis.QuizViewSet, basename="quiz")
router.register("attempts", quizzes_apis.AttemptViewSet, basename="attempt")
router.register("reviews", quizzes_apis.ReviewViewSet, basename="review")
router.register("invitations", quizzes_apis.InvitationViewSet, basename="invitation")
router.register("candidates", quizzes_apis.CandidateViewSet, basename="candidate")
router.register("batch-requirements", quizzes_apis.BatchRequirementViewSet, basename="batch-requirement")
router.register("dataset-builds", preference_data_apis.DatasetBuildViewSet, basename="dataset-build")
router.register("dataset-exports", preference_data_apis.DatasetExportViewSet, basename="dataset-export")
router.register("external-sources", preference_data_apis.ExternalSourceViewSet, basename="external-source")
router.register("base-checkpoints", rewardmodel_apis.BaseCheckpointViewSet, basename="base-checkpoint")
router.register("training-runs", rewardmodel_apis.TrainingRunViewSet, basename="training-run")
router.register("run-evaluations", rewardmodel_apis.RunEvaluationViewSet, basename="run-evaluation")
router.register("model-variants", sampling_apis.ModelVariantViewSet, basename="model-variant")
router.register("pair-policies", sampling_apis.PairPolicyViewSet, basename="pair-policy")
router.register("generation-jobs", sampling_apis.GenerationJobViewSet, basename="generation-job")

api_urlpatterns = [
    path("", include(router.urls)),
    path("me/", accounts_apis.me, name="me"),
    path("leaderboard/", leaderboard_apis.leaderboard, name="leaderboard"),
    path("leaderboard/rankings/", leaderboard_apis.leaderboard_rankings, name="leaderboard-rankings"),
    path("leaderboard/matrix/", leaderboard_apis.leaderboard_matrix, name="leaderboard-matrix"),
    path("leaderboard/judgings/", leaderboard_apis.judging_create, name="leaderboard-judging-create"),
    path("auth/token/", token_apis.TokenObtainView.as_view(), name="api-token"),
    path("auth/token/rotate/", token_apis.token_rotate_own, name="api-token-rotate"),
    path("auth/tokens/<id:user_id>/", token_apis.token_revoke, name="api-token-revoke"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_urlpatterns)),
    path("", include("frontend.urls")),
]

# A URL under /api/ that matches no route answers JSON (config.exceptions.page_not_found).
handler404 = "config.exceptions.page_not_found"
