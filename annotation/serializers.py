"""API shapes. Annotator-facing shapes never carry model names, other people's ratings or labels."""

from rest_framework import serializers

from .models import MAX_CHECK_RATE, Assignment, Batch, Comparison, Focus, Rating
from .selectors import comparison_context
from .services import check_rates_validate


class BatchSerializer(serializers.ModelSerializer):
    class Meta:
        model = Batch
        fields = [
            "id",
            "name",
            "focus",
            "overlap",
            "guidelines",
            "is_open",
            "week",
            "prompt_mode",
            "lease_minutes",
            "gold_rate",
            "repeat_rate",
        ]
        read_only_fields = ["id", "week"]

    def validate(self, attrs: dict) -> dict:
        # A PATCH may change one rate: check the pair as it will be stored.
        current = self.instance
        check_rates_validate(
            gold_rate=attrs.get("gold_rate", current.gold_rate if current else 0.0),
            repeat_rate=attrs.get("repeat_rate", current.repeat_rate if current else 0.0),
        )
        return attrs


class BatchCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    focus = serializers.ChoiceField(choices=Focus.choices)
    overlap = serializers.IntegerField(min_value=1, max_value=20, default=3)
    guidelines = serializers.CharField(required=False, allow_blank=True, default="")
    prompt_mode = serializers.ChoiceField(choices=["pool", "annotator"], default="pool")
    lease_minutes = serializers.IntegerField(min_value=1, max_value=240, default=10)
    gold_rate = serializers.FloatField(min_value=0.0, max_value=MAX_CHECK_RATE, default=0.0)
    repeat_rate = serializers.FloatField(min_value=0.0, max_value=MAX_CHECK_RATE, default=0.0)


class ShownResponseSerializer(serializers.Serializer):
    """A response as an annotator sees it: an id and the text, nothing about the model."""

    id = serializers.IntegerField()
    text = serializers.CharField()


class AnnotatorAssignmentSerializer(serializers.Serializer):
    assignment = serializers.IntegerField(source="id")
    batch = serializers.SerializerMethodField()
    context = serializers.SerializerMethodField()
    left = serializers.SerializerMethodField()
    right = serializers.SerializerMethodField()
    expires_at = serializers.DateTimeField()

    def get_batch(self, assignment: Assignment) -> dict:
        batch = assignment.comparison.batch
        return {"id": batch.id, "name": batch.name, "focus": batch.focus}

    def get_context(self, assignment: Assignment) -> list[dict]:
        return comparison_context(assignment.comparison)

    def _shown(self, assignment: Assignment, left: bool) -> dict:
        comparison = assignment.comparison
        first, second = (
            (comparison.response_b, comparison.response_a)
            if assignment.swapped
            else (
                comparison.response_a,
                comparison.response_b,
            )
        )
        response = first if left else second
        return {"id": response.id, "text": response.text}

    def get_left(self, assignment: Assignment) -> dict:
        return self._shown(assignment, left=True)

    def get_right(self, assignment: Assignment) -> dict:
        return self._shown(assignment, left=False)


class RatingSubmitSerializer(serializers.Serializer):
    assignment = serializers.IntegerField()
    chosen_response = serializers.IntegerField()
    strength = serializers.CharField(allow_blank=True, required=False, default="")
    safety_label = serializers.CharField(allow_blank=True, required=False, default="")
    rationale = serializers.CharField(allow_blank=True, required=False, default="", max_length=10_000)
    seconds_spent = serializers.FloatField(
        required=False, allow_null=True, default=None, min_value=0, max_value=86_400, help_text="At most a day."
    )
    idempotency_key = serializers.CharField(max_length=64)


class RatingSerializer(serializers.ModelSerializer):
    chosen_response = serializers.SerializerMethodField()
    annotator = serializers.SerializerMethodField()
    batch = serializers.IntegerField(source="comparison.batch_id")

    class Meta:
        model = Rating
        fields = [
            "id",
            "assignment",
            "comparison",
            "batch",
            "annotator",
            "chosen_response",
            "strength",
            "safety_label",
            "rationale",
            "seconds_spent",
            "idempotency_key",
            "created_at",
        ]

    def get_chosen_response(self, rating: Rating) -> int:
        comparison = rating.comparison
        return comparison.response_a_id if rating.chosen == "a" else comparison.response_b_id

    def get_annotator(self, rating: Rating) -> str:
        return rating.annotator.pseudonym


class ResearchResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()
    variant = serializers.CharField(source="variant.__str__")
    temperature = serializers.FloatField()
    top_p = serializers.FloatField(allow_null=True)
    generation = serializers.JSONField()


class ResearchComparisonSerializer(serializers.ModelSerializer):
    response_a = ResearchResponseSerializer()
    response_b = ResearchResponseSerializer()
    context = serializers.SerializerMethodField()

    class Meta:
        model = Comparison
        fields = [
            "id",
            "batch",
            "context",
            "response_a",
            "response_b",
            "status",
            "rating_count",
            "label_choice",
            "label_strength",
            "label_safety",
            "label_vote",
            "labelled_at",
            "is_gold",
            "gold_choice",
            "gold_strength",
            "gold_marked_at",
            "repeat_of",
        ]

    def get_context(self, comparison: Comparison) -> list[dict]:
        return comparison_context(comparison)


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The JSONL file, one prompt or comparison per line.")
    allow_markup = serializers.BooleanField(
        default=False,
        help_text="Accept chat-template markup ([INST], <<SYS>>, <|im_start|> …) in this file's texts; refused "
        "otherwise, as it would reach the chat template.",
    )


class ImportResultSerializer(serializers.Serializer):
    imported = serializers.IntegerField()


class GoldMarkSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(choices=["a", "b"], help_text="The expected answer: response A or B.")
    strength = serializers.CharField(allow_blank=True, required=False, default="")


class GoldPromoteSerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    min_strength = serializers.CharField(required=False, default="negligibly_better")


class GoldPromotedSerializer(serializers.Serializer):
    promoted = serializers.IntegerField(help_text="How many comparisons became gold.")
