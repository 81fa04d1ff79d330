"""factory_boy factories for Preflab's models."""

import datetime

import factory
from django.utils import timezone

from accounts.models import Role, User, Vendor
from annotation.models import Batch, Comparison, Dialogue, Response, Turn
from sampling.models import Backend, ModelVariant


class VendorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Vendor

    name = factory.Sequence(lambda n: f"Vendor {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    role = Role.RESEARCHER
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests")

    @factory.post_generation
    def saved(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class AnnotatorFactory(UserFactory):
    role = Role.ANNOTATOR
    vendor = factory.SubFactory(VendorFactory)


class VendorManagerFactory(UserFactory):
    role = Role.VENDOR_MANAGER
    vendor = factory.SubFactory(VendorFactory)


class BatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Batch

    name = factory.Sequence(lambda n: f"Batch {n}")
    focus = "helpfulness"
    overlap = 3
    week = factory.LazyFunction(lambda: timezone.localdate() - datetime.timedelta(days=timezone.localdate().weekday()))


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVariant

    name = factory.Sequence(lambda n: f"secret-model-{n}")
    backend = Backend.EXTERNAL


class ResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Response

    text = factory.Sequence(lambda n: f"Response text number {n}.")
    variant = factory.SubFactory(VariantFactory)
    temperature = 0.7


class ComparisonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Comparison
        skip_postgeneration_save = True

    batch = factory.SubFactory(BatchFactory)
    dialogue = factory.LazyAttribute(lambda o: Dialogue.objects.create(batch=o.batch))
    context_length = 1
    response_a = factory.SubFactory(ResponseFactory)
    response_b = factory.SubFactory(ResponseFactory, temperature=1.0)

    @factory.post_generation
    def prompt(obj, create, extracted, **kwargs):
        if create:
            Turn.objects.create(dialogue=obj.dialogue, index=0, role="user", content=extracted or "What is 2 + 2?")
