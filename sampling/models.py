"""Model variants: the named, versioned models whose responses annotators compare."""

from django.conf import settings
from django.db import models


class Backend(models.TextChoices):
    TRANSFORMERS = "transformers", "Local checkpoint (transformers)"
    OPENAI = "openai", "OpenAI-compatible endpoint"
    EXTERNAL = "external", "Imported responses (not sampled by Preflab)"


class ChatTemplate(models.TextChoices):
    MODEL = "model", "The model's own chat template"
    LLAMA2 = "llama2", "Llama 2 template"


class ModelVariant(models.Model):
    """A model that produces responses. Annotators never see its name."""

    name = models.CharField(max_length=120)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True)
    backend = models.CharField(max_length=20, choices=Backend.choices, default=Backend.TRANSFORMERS)
    checkpoint_path = models.CharField(
        max_length=500, blank=True, help_text="Local checkpoint directory or GGUF file (transformers backend)."
    )
    base_url = models.URLField(blank=True, help_text="OpenAI-compatible server, e.g. http://gpu-1:8000/v1")
    api_model = models.CharField(max_length=200, blank=True, help_text="Model name the endpoint expects.")
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Name of the environment variable that holds the API key."
    )
    system_prompt = models.TextField(blank=True)
    chat_template = models.CharField(max_length=20, choices=ChatTemplate.choices, default=ChatTemplate.MODEL)
    max_new_tokens = models.PositiveIntegerField(default=256)
    top_p = models.FloatField(default=0.9)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="unique_variant_version")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"
