"""People are scoped by vendor: researchers see everyone, a vendor manager their own vendor's people
and vendor, an annotator only themselves and no list at all (selector, API and page)."""

import pytest

from accounts.selectors import people_for
from tests.factories import AnnotatorFactory, UserFactory, VendorFactory, VendorManagerFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_vendors():
    acme, northwind = VendorFactory(name="Acme"), VendorFactory(name="Northwind")
    return {
        "acme": acme,
        "northwind": northwind,
        "acme_people": [AnnotatorFactory(vendor=acme, username=f"acme-{i}") for i in range(2)],
        "northwind_people": [AnnotatorFactory(vendor=northwind, username=f"north-{i}") for i in range(2)],
        "acme_manager": VendorManagerFactory(vendor=acme, username="acme-manager"),
        "researcher": UserFactory(username="researcher"),
    }


def usernames(people) -> set[str]:
    return {person.username for person in people}


def test_the_selector_scopes_people_by_who_asks(two_vendors):
    everyone = usernames(people_for(two_vendors["researcher"]))
    assert {"acme-0", "acme-1", "north-0", "north-1", "acme-manager", "researcher"} <= everyone
    assert usernames(people_for(two_vendors["acme_manager"])) == {"acme-0", "acme-1", "acme-manager"}
    assert usernames(people_for(two_vendors["acme_people"][0])) == {"acme-0"}


def test_the_api_shows_a_vendor_manager_only_their_vendor(two_vendors):
    manager = client_for(two_vendors["acme_manager"])
    people = manager.get("/api/people/?page_size=100").json()["results"]
    assert {p["username"] for p in people} == {"acme-0", "acme-1", "acme-manager"}
    assert {p["vendor"] for p in people} == {"Acme"}
    stranger = two_vendors["northwind_people"][0]
    assert manager.get(f"/api/people/{stranger.pk}/").status_code == 404  # not even its existence
    vendors = manager.get("/api/vendors/").json()["results"]
    assert [v["name"] for v in vendors] == ["Acme"]


def test_an_annotator_gets_no_list_of_people(two_vendors):
    annotator = client_for(two_vendors["acme_people"][0])
    assert annotator.get("/api/people/").status_code == 403
    assert annotator.get("/api/vendors/").status_code == 403
    assert annotator.get("/api/me/").json()["username"] == "acme-0"


def test_the_people_page_lists_only_the_managers_vendor(two_vendors, client):
    client.force_login(two_vendors["acme_manager"])
    page = client.get("/vendor/").content.decode()
    assert "acme-0" in page and "acme-1" in page
    assert "north-0" not in page and "Northwind" not in page
