"""The leaderboard's query parameters and answers, as the OpenAPI schema documents them."""

from rest_framework import serializers

from annotation.models import Focus

from .selectors import BY_VARIANT_TEMPERATURE, DEFAULT_BOOTSTRAP, DEFAULT_MIN_COMPARISONS, GROUPINGS

MAX_BOOTSTRAP = 1000
MAX_ID = 2**63 - 1  # a bigint: a larger id is refused as input, not sent to the database


class LeaderboardQuerySerializer(serializers.Serializer):
    batch = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, help_text="One batch (else every batch)."
    )
    week = serializers.DateField(required=False, help_text="The batches of one week (the Monday it opened).")
    focus = serializers.ChoiceField(choices=Focus.choices, required=False, allow_blank=True)
    by = serializers.ChoiceField(
        choices=GROUPINGS, default=BY_VARIANT_TEMPERATURE, help_text="Rank variant × temperature, or variants."
    )
    judge_run = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text="A training run whose stored rewards rank the same comparisons.",
    )
    min_comparisons = serializers.IntegerField(
        required=False, min_value=1, max_value=10_000, default=DEFAULT_MIN_COMPARISONS
    )
    bootstrap = serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_BOOTSTRAP, default=DEFAULT_BOOTSTRAP, help_text="Bootstrap refits."
    )

    def validate(self, attrs):
        if attrs.get("batch") and attrs.get("week"):
            raise serializers.ValidationError("Give a batch or a week, not both.")
        return attrs


class RankingRowSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    item = serializers.CharField(help_text="Variant name and version, and the temperature when ranked by it.")
    variant_id = serializers.IntegerField()
    variant = serializers.CharField()
    temperature = serializers.FloatField(allow_null=True)
    rating = serializers.FloatField(
        allow_null=True, help_text="Bradley–Terry strength on an Elo-like scale (1000 = average)."
    )
    ci_low = serializers.FloatField(allow_null=True, help_text="95% bootstrap interval of the rating.")
    ci_high = serializers.FloatField(allow_null=True)
    strength = serializers.FloatField(help_text="log-strength theta, centred on 0.")
    comparisons = serializers.IntegerField()
    wins = serializers.FloatField()
    losses = serializers.FloatField()
    ties = serializers.FloatField()
    graph_part = serializers.IntegerField(
        allow_null=True, help_text="1 = the largest connected part of the comparison graph; null: no vote yet."
    )
    too_few_comparisons = serializers.BooleanField()
    judged_by = serializers.CharField()


class MatrixRowSerializer(serializers.Serializer):
    item = serializers.CharField()
    opponent = serializers.CharField()
    win_rate = serializers.FloatField(help_text="(wins + ties / 2) / comparisons of item against opponent.")
    comparisons = serializers.IntegerField()
    judged_by = serializers.CharField()


class RankingSerializer(serializers.Serializer):
    judged_by = serializers.CharField()
    n_comparisons = serializers.IntegerField()
    tie_parameter = serializers.FloatField(help_text="Davidson's nu (0 when no comparison was a tie).")
    graph_parts = serializers.IntegerField()
    bootstrap_samples = serializers.IntegerField()
    warnings = serializers.ListField(child=serializers.CharField())
    rows = RankingRowSerializer(many=True)
    matrix_items = serializers.ListField(child=serializers.CharField(), help_text="Row and column order of the matrix.")
    matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="matrix[r][c]: win rate of item r against item c (null where they never met).",
    )
    matrix_counts = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))


class LeaderboardSerializer(serializers.Serializer):
    scope = serializers.CharField()
    grouping = serializers.CharField()
    min_comparisons = serializers.IntegerField()
    n_unlabelled = serializers.IntegerField(help_text="Comparisons without a majority label yet (left out).")
    humans = RankingSerializer()
    judge = RankingSerializer(allow_null=True)
    judge_run = serializers.IntegerField(allow_null=True)
    judge_missing = serializers.IntegerField(
        help_text="Comparisons the judge has not scored (left out of its ranking)."
    )
    judge_agreement = serializers.FloatField(
        allow_null=True, help_text="Share of labelled, non-tie comparisons the reward model called as people did."
    )
    judge_agreement_n = serializers.IntegerField()


class JudgingCreateSerializer(serializers.Serializer):
    run = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    batch = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, allow_null=True, help_text="Empty: every batch."
    )


class JudgingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    run = serializers.IntegerField(source="run_id")
    batch = serializers.IntegerField(source="batch_id", allow_null=True)
    status = serializers.CharField()
    n_scored = serializers.IntegerField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
