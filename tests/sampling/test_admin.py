"""Variants edited in the Django admin are versioned like everywhere else."""

import pytest

from sampling.models import ModelVariant
from tests.factories import UserFactory
from tests.sampling.conftest import make_variant, prompt_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def form_data(variant: ModelVariant, **changes) -> dict:
    data = {
        "description": variant.description,
        "backend": variant.backend,
        "checkpoint_path": variant.checkpoint_path,
        "base_url": variant.base_url,
        "api_model": variant.api_model,
        "api_key_env": variant.api_key_env,
        "system_prompt": variant.system_prompt,
        "chat_template": variant.chat_template,
        "max_new_tokens": variant.max_new_tokens,
        "top_p": variant.top_p,
        "is_active": "on",
    }
    return {**data, **changes}


def test_admin_pages_open(admin_client):
    variant = make_variant("admin-v", backend="transformers", checkpoint_path="/m")
    batch = prompt_batch([variant, make_variant("other", backend="transformers", checkpoint_path="/m")])
    for url in (
        "/admin/sampling/modelvariant/",
        "/admin/sampling/modelvariant/add/",
        f"/admin/sampling/modelvariant/{variant.pk}/change/",
        "/admin/sampling/pairpolicy/",
        f"/admin/sampling/pairpolicy/{batch.pair_policy.pk}/change/",
        "/admin/sampling/generationjob/",
    ):
        assert admin_client.get(url).status_code == 200, url


def test_changing_generation_settings_in_the_admin_makes_a_new_version(admin_client):
    variant = make_variant("admin-v", backend="transformers", checkpoint_path="/m", top_p=0.9)
    answer = admin_client.post(f"/admin/sampling/modelvariant/{variant.pk}/change/", form_data(variant, top_p=0.8))
    assert answer.status_code == 302
    assert list(ModelVariant.objects.filter(name="admin-v").values_list("version", "top_p", "is_active")) == [
        (2, 0.8, True),
        (1, 0.9, False),
    ]

    refused = admin_client.post(
        f"/admin/sampling/modelvariant/{variant.pk}/change/",
        form_data(variant, backend="openai", chat_template="model"),
    )
    assert refused.status_code == 200 and "base URL" in refused.content.decode()

    created = admin_client.post(
        "/admin/sampling/modelvariant/add/", {**form_data(variant), "name": "admin-v", "top_p": 0.5}
    )
    assert created.status_code == 200 and "exists" in created.content.decode()
