"""A full agreement recompute of one batch on PostgreSQL: the Django side of agreement.coefficients.

Seeds a database (created and dropped by this script) with set-based SQL: one batch of
``--comparisons`` comparisons rated 3 times each by ``--annotators`` annotators of 4 vendors, plus
gold comparisons whose ratings are gold checks and swapped repeats rated once, then times
``agreement.services.agreement_recompute`` (load with one values_list query, compute
every coefficient, Dawid-Skene and the per-annotator figures, store the report, the vendor reports
and the annotator rows) and prints the time of each step, the best of ``--repeat`` runs.

    .venv/bin/python benchmarks/agreement_recompute.py [--comparisons 100000] [--annotators 300] [--repeat 3]

Data: each comparison has a latent better response; a rating follows it with probability 0.8
(``hashtext`` of the comparison and slot decides, so a seed is the data), strength and sides from
other hashes, time per rating 10-120 s.
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("PREFLAB_BENCH_ADMIN_DSN", "postgres://postgres@127.0.0.1:5432/postgres")
DB_NAME = "preflab_bench_agreement"
VENDORS = 4

# %(x)s parameters: n comparisons, a annotators, g gold, r repeats, ids of the batch and variants,
# and the first ids (d0, r0, u0, c0, s0) so that rows can refer to each other without RETURNING.
SEED_SQL = [
    """INSERT INTO accounts_user (id, password, is_superuser, username, first_name, last_name, email, is_staff,
              is_active, date_joined, role, vendor_id)
       SELECT %(u0)s + g, '!', false, 'bench-annotator-' || g, '', '', '', false, true, now(), 'annotator',
              %(vendor0)s + g %% """
    + str(VENDORS)
    + """
       FROM generate_series(1, %(a)s) g""",
    """INSERT INTO annotation_dialogue (id, batch_id, created_at)
       SELECT %(d0)s + g, %(batch)s, now() FROM generate_series(1, %(n)s) g""",
    """INSERT INTO annotation_response (id, text, variant_id, temperature, generation, created_at)
       SELECT %(r0)s + g, 'Response ' || g, CASE WHEN g %% 2 = 1 THEN %(v1)s ELSE %(v2)s END, 0.7, '{}', now()
       FROM generate_series(1, 2 * %(n)s) g""",
    # The comparisons: the first %(g)s are gold, marked a day ago, with the latent answer.
    """INSERT INTO annotation_comparison (id, batch_id, dialogue_id, context_length, response_a_id, response_b_id,
              status, rating_count, slots_taken, label_choice, label_strength, label_safety, label_vote,
              is_gold, gold_choice, gold_strength, gold_marked_at, created_at)
       SELECT %(c0)s + g, %(batch)s, %(d0)s + g, 1, %(r0)s + 2 * g - 1, %(r0)s + 2 * g, 'complete', 3, 3,
              '', '', '', '', g <= %(g)s,
              CASE WHEN g <= %(g)s THEN CASE WHEN hashtext('t' || g) & 1 = 0 THEN 'a' ELSE 'b' END ELSE '' END,
              '', CASE WHEN g <= %(g)s THEN now() - interval '1 day' END, now()
       FROM generate_series(1, %(n)s) g""",
    # Repeats of comparisons %(g)s+1 .. %(g)s+%(r)s, with A and B exchanged.
    """INSERT INTO annotation_comparison (id, batch_id, dialogue_id, context_length, response_a_id, response_b_id,
              status, rating_count, slots_taken, label_choice, label_strength, label_safety, label_vote,
              is_gold, gold_choice, gold_strength, repeat_of_id, created_at)
       SELECT %(c0)s + %(n)s + k, %(batch)s, %(d0)s + %(g)s + k, 1, %(r0)s + 2 * (%(g)s + k),
              %(r0)s + 2 * (%(g)s + k) - 1, 'repeat', 1, 1, '', '', '', '', false, '', '', %(c0)s + %(g)s + k, now()
       FROM generate_series(1, %(r)s) k""",
    # Three assignments per comparison (distinct annotators: slots 0, 1, 2 are 101 apart modulo a).
    """CREATE TEMP TABLE bench_slots AS
       SELECT %(s0)s + 3 * (g - 1) + k + 1 AS id, %(c0)s + g AS comparison_id, g, k,
              %(u0)s + 1 + (g * 7 + k * 101) %% %(a)s AS annotator_id,
              (hashtext('s' || g || ':' || k) & 1) = 1 AS swapped
       FROM generate_series(1, %(n)s) g, generate_series(0, 2) k""",
    # The repeats are rated by slot 0's annotator, sides as at the first showing.
    """INSERT INTO bench_slots
       SELECT %(s0)s + 3 * %(n)s + k, %(c0)s + %(n)s + k, -(%(g)s + k), 0,
              %(u0)s + 1 + ((%(g)s + k) * 7) %% %(a)s, (hashtext('s' || (%(g)s + k) || ':0') & 1) = 1
       FROM generate_series(1, %(r)s) k""",
    """INSERT INTO annotation_assignment (id, comparison_id, annotator_id, swapped, status, leased_at, expires_at)
       SELECT id, comparison_id, annotator_id, swapped, 'submitted', now(), now() FROM bench_slots""",
    """INSERT INTO annotation_rating (assignment_id, comparison_id, annotator_id, chosen, strength, safety_label,
              rationale, seconds_spent, shown_left, idempotency_key, created_at)
       SELECT s.id, s.comparison_id, s.annotator_id,
              -- follow the latent answer 80%% of the time; a repeat stores the original's B as its A
              CASE WHEN ((abs(hashtext('f' || abs(s.g) || ':' || s.k)) %% 100 < 80)
                         = (hashtext('t' || abs(s.g)) & 1 = 0)) <> (s.g < 0) THEN 'a' ELSE 'b' END,
              (ARRAY['negligibly_better', 'slightly_better', 'better', 'significantly_better'])
                  [1 + abs(hashtext('r' || s.g || ':' || s.k)) %% 4],
              '', '', 10 + abs(hashtext('w' || s.g || ':' || s.k)) %% 110,
              CASE WHEN s.swapped THEN 'b' ELSE 'a' END, 'bench-' || s.id, now()
       FROM bench_slots s""",
    "SELECT setval(pg_get_serial_sequence('accounts_user', 'id'), (SELECT MAX(id) FROM accounts_user))",
    "SELECT setval(pg_get_serial_sequence('annotation_dialogue', 'id'), (SELECT MAX(id) FROM annotation_dialogue))",
    "SELECT setval(pg_get_serial_sequence('annotation_response', 'id'), (SELECT MAX(id) FROM annotation_response))",
    "SELECT setval(pg_get_serial_sequence('annotation_comparison', 'id'), (SELECT MAX(id) FROM annotation_comparison))",
    "SELECT setval(pg_get_serial_sequence('annotation_assignment', 'id'), (SELECT MAX(id) FROM annotation_assignment))",
    "ANALYZE",
]


def recreate_database() -> str:
    conn = psycopg2.connect(ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {DB_NAME}")
    conn.close()
    return ADMIN_DSN.rsplit("/", 1)[0] + "/" + DB_NAME


def drop_database() -> None:
    conn = psycopg2.connect(ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    conn.close()


def seed(comparisons: int, annotators: int, gold: int, repeats: int) -> int:
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Vendor
    from annotation.models import Batch
    from sampling.models import ModelVariant

    batch = Batch.objects.create(name="bench-agreement", focus="helpfulness", overlap=3, week=timezone.localdate())
    v1 = ModelVariant.objects.create(name="bench-a", backend="external")
    v2 = ModelVariant.objects.create(name="bench-b", backend="external")
    vendors = [Vendor.objects.create(name=f"Bench vendor {i}") for i in range(VENDORS)]
    assert [v.id for v in vendors] == list(range(vendors[0].id, vendors[0].id + VENDORS))
    with connection.cursor() as cur:
        firsts = {}
        for key, table in [
            ("u0", "accounts_user"),
            ("d0", "annotation_dialogue"),
            ("r0", "annotation_response"),
            ("c0", "annotation_comparison"),
            ("s0", "annotation_assignment"),
        ]:
            cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
            firsts[key] = cur.fetchone()[0]
        params = {
            **firsts,
            "n": comparisons,
            "a": annotators,
            "g": gold,
            "r": repeats,
            "batch": batch.id,
            "v1": v1.id,
            "v2": v2.id,
            "vendor0": vendors[0].id,
        }
        for statement in SEED_SQL:
            cur.execute(statement, params)
    return batch.id


def timed_recompute(batch_id: int) -> dict[str, float]:
    """The service's three steps, timed apart; then the service itself, end to end."""
    from agreement import reliability
    from agreement import services as agreement_services
    from agreement.models import AgreementReport
    from annotation.models import Rating

    t0 = time.perf_counter()
    table = agreement_services.rating_table(Rating.objects.filter(comparison__batch_id=batch_id))
    t1 = time.perf_counter()
    reliability.analyse(table)
    t2 = time.perf_counter()
    report = agreement_services.agreement_recompute(batch_id=batch_id)
    t3 = time.perf_counter()
    assert AgreementReport.objects.filter(pk=report.pk, status="ready").exists()
    return {"load": t1 - t0, "compute": t2 - t1, "total": t3 - t2, "ratings": len(table), "report": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comparisons", type=int, default=100_000)
    parser.add_argument("--annotators", type=int, default=300)
    parser.add_argument("--gold", type=int, default=500, help="gold comparisons (their 3 ratings are gold checks)")
    parser.add_argument("--repeats", type=int, default=3000, help="swapped repeats, rated once each")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best is kept")
    args = parser.parse_args()
    if args.annotators < 303:
        # slots 0, 1, 2 of a comparison are 101 apart modulo the number of annotators
        args.annotators = max(args.annotators, 303)

    print(f"machine: {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    database_url = recreate_database()
    # PREFLAB_DEMO: a local run (a secret key kept under var/), not production (config/settings/security.py).
    os.environ.setdefault("PREFLAB_DEMO", "1")
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": "", "PREFLAB_LOG_LEVEL": "WARNING"}
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        os.environ.update({"DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "config.settings"})
        os.environ.update({"REDIS_URL": "", "PREFLAB_LOG_LEVEL": "WARNING"})
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        started = time.perf_counter()
        batch_id = seed(args.comparisons, args.annotators, args.gold, args.repeats)
        print(f"seeded in {time.perf_counter() - started:.1f} s")
        runs = [timed_recompute(batch_id) for _ in range(args.repeat)]
        best = {key: min(run[key] for run in runs) for key in ("load", "compute", "total")}
        report = runs[-1]["report"]
        ratings = runs[-1]["ratings"]
        summary = report.metrics["summary"]
        ac2 = report.metrics["scale"]["gwet_ac2"]
        print(
            f"{ratings:,} ratings ({summary['regular_ratings']:,} ordinary on {summary['comparisons']:,} comparisons, "
            f"{summary['gold_checks']:,} gold checks, {summary['repeat_checks']:,} repeat checks), "
            f"{summary['annotators']} annotators in {VENDORS} vendors"
        )
        print(f"  load (one values_list query) {best['load']:6.2f} s")
        print(f"  compute (reliability.analyse) {best['compute']:6.2f} s")
        print(f"  full recompute (load + compute + {VENDORS} vendor reports + store) {best['total']:6.2f} s")
        print(f"  {ratings / best['total']:,.0f} ratings per second end to end; best of {args.repeat}")
        print(
            f"  AC2 (signed scale, ordinal weights) {ac2['coefficient']:.4f} ± {ac2['standard_error']:.4f}; "
            f"Dawid-Skene vs majority: {report.metrics['aggregation']['disagreement_share']:.2%} disagree"
        )
    finally:
        from django.db import connections

        connections.close_all()
        drop_database()


if __name__ == "__main__":
    main()
