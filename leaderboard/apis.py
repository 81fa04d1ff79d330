"""The variant leaderboard API (researchers only: it names the models).

`GET /api/leaderboard/` answers the whole leaderboard (rankings by people and, with `judge_run`, by
a reward model, each with its win-rate matrix and warnings); `rankings/` and `matrix/` answer the
same tables as rows, and as CSV with `?format=csv`. `POST /api/leaderboard/judgings/` queues the
scoring of a scope's responses with a reward model, which the `judge_run` ranking reads.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, permission_classes, renderer_classes
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import IsResearcher
from agreement.renderers import CSVRenderer
from annotation import selectors as annotation_selectors
from config.schema import state_errors
from rewardmodel import selectors as rewardmodel_selectors
from rewardmodel.services import judging

from . import selectors
from .serializers import (
    JudgingCreateSerializer,
    JudgingSerializer,
    LeaderboardQuerySerializer,
    LeaderboardSerializer,
    MatrixRowSerializer,
    RankingRowSerializer,
)

RENDERERS = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]


def board_from_query(request: Request) -> selectors.Leaderboard:
    query = LeaderboardQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    data = query.validated_data
    return selectors.leaderboard_for(
        request.user,
        scope=selectors.Scope(batch_id=data.get("batch"), week=data.get("week"), focus=data.get("focus") or ""),
        grouping=data["by"],
        judge_run_id=data.get("judge_run"),
        min_comparisons=data["min_comparisons"],
        bootstrap_samples=data["bootstrap"],
    )


def ranking_payload(ranking: selectors.Ranking) -> dict:
    return {
        "judged_by": ranking.judged_by,
        "n_comparisons": ranking.n_comparisons,
        "tie_parameter": ranking.tie_parameter,
        "graph_parts": ranking.parts,
        "bootstrap_samples": ranking.bootstrap_samples,
        "warnings": ranking.warnings,
        "rows": list(selectors.ranking_rows(ranking)),
        "matrix_items": [selectors.item_label(entry.item) for entry in ranking.entries],
        "matrix": ranking.matrix,
        "matrix_counts": ranking.matrix_counts,
    }


def board_payload(board: selectors.Leaderboard) -> dict:
    return {
        "scope": board.description,
        "grouping": board.grouping,
        "min_comparisons": board.min_comparisons,
        "n_unlabelled": board.n_unlabelled,
        "humans": ranking_payload(board.humans),
        "judge": ranking_payload(board.judge) if board.judge is not None else None,
        "judge_run": board.judge_run.pk if board.judge_run is not None else None,
        "judge_missing": board.judge_missing,
        "judge_agreement": board.judge_agreement,
        "judge_agreement_n": board.judge_agreement_n,
    }


def _rows(board: selectors.Leaderboard, table) -> list[dict]:
    rows = list(table(board.humans))
    if board.judge is not None:
        rows += list(table(board.judge))
    return rows


@extend_schema(parameters=[LeaderboardQuerySerializer], responses=LeaderboardSerializer)
@api_view(["GET"])
@permission_classes([IsResearcher])
def leaderboard(request: Request) -> Response:
    """Variants ranked by Bradley–Terry (Davidson ties) over the human majority labels, with 95%
    bootstrap intervals and the win-rate matrix; with `judge_run`, the same by a reward model."""
    return Response(board_payload(board_from_query(request)))


@extend_schema(parameters=[LeaderboardQuerySerializer], responses=RankingRowSerializer(many=True))
@api_view(["GET"])
@permission_classes([IsResearcher])
@renderer_classes(RENDERERS)
def leaderboard_rankings(request: Request) -> Response:
    """The rankings as rows (people first, then the reward model's); `?format=csv` for a CSV."""
    board = board_from_query(request)
    request.parser_context["view"].csv_filename = "leaderboard-rankings.csv"
    return Response(_rows(board, selectors.ranking_rows))


@extend_schema(parameters=[LeaderboardQuerySerializer], responses=MatrixRowSerializer(many=True))
@api_view(["GET"])
@permission_classes([IsResearcher])
@renderer_classes(RENDERERS)
def leaderboard_matrix(request: Request) -> Response:
    """The win-rate matrix as one row per ordered pair that met; `?format=csv` for a CSV."""
    board = board_from_query(request)
    request.parser_context["view"].csv_filename = "leaderboard-win-rates.csv"
    return Response(_rows(board, selectors.matrix_rows))


@state_errors(409)
@extend_schema(request=JudgingCreateSerializer, responses={202: JudgingSerializer})
@api_view(["POST"])
@permission_classes([IsResearcher])
def judging_create(request: Request) -> Response:
    """Queue the scoring of a batch's (or every batch's) responses with a trained reward model."""
    data = JudgingCreateSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    run = get_object_or_404(rewardmodel_selectors.runs_for(request.user), pk=data.validated_data["run"])
    batch = None
    if data.validated_data.get("batch"):
        batch = get_object_or_404(annotation_selectors.batches_for(request.user), pk=data.validated_data["batch"])
    created = judging.response_judging_create(run=run, batch=batch, created_by=request.user)
    return Response(JudgingSerializer(created).data, status=status.HTTP_202_ACCEPTED)
