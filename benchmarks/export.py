"""Export a million comparisons from PostgreSQL to JSONL and Parquet: rows per second and peak memory.

    .venv/bin/python benchmarks/export.py                    # 1,000,000 comparisons
    .venv/bin/python benchmarks/export.py --rows 100000 --keep

What it does, in its own database (``--database``, default preflab_bench_export, on the server of
``--server``), which it creates and drops at the end (``--keep`` keeps it):

1. Fills the annotation tables with SQL (``generate_series``): ``--rows`` comparisons in 10 weekly
   helpfulness batches, each rated by 3 of 30 annotators, 10% of them at the second user turn of a
   multi-turn dialogue; prompts of ~``--prompt-chars`` and responses of ~``--response-chars``
   characters with quotes, newlines and non-ASCII text, so JSON escaping is exercised.
2. Runs the real dataset builder twice (the real services, not SQL): on the first three batches
   (three tenths of the rows) and on all ten batches.
3. Runs each export (TRL JSONL, TRL Parquet) of both builds in a fresh Python process, which reports
   its wall time, its CPU time, its peak resident memory (VmHWM) and the memory it started the
   export with. Peak memory of the full export next to that of the three tenths shows whether
   memory grows with rows (both are large enough to fill Parquet row groups of 50,000 rows).
4. Reads the files back (line count, Parquet row count and first row) to check what was written.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

BATCHES = 10
ANNOTATORS = 30


def vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def setup_django(database_url: str, media_root: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["PREFLAB_MEDIA_ROOT"] = media_root
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # A local run (plain HTTP, a secret key kept under var/), not production (config/settings/security.py).
    os.environ.setdefault("PREFLAB_DEMO", "1")
    os.environ.setdefault("PREFLAB_LOG_LEVEL", "WARNING")
    import django

    django.setup()


def admin_connection(server: str):
    import psycopg2

    connection = psycopg2.connect(f"{server}/postgres")
    connection.autocommit = True
    return connection


def create_database(server: str, name: str) -> None:
    connection = admin_connection(server)  # not `with connection`: psycopg2 would open a transaction
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def drop_database(server: str, name: str) -> None:
    connection = admin_connection(server)
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


FILL_SQL = """
INSERT INTO annotation_dialogue (batch_id, created_at)
SELECT %(first_batch)s + (i - 1) / %(per_batch)s, now() FROM generate_series(1, %(rows)s) AS i;

INSERT INTO annotation_turn (dialogue_id, "index", role, content)
SELECT %(first_dialogue)s + i - 1, 0, 'user',
       'Question ' || i || ': "' || repeat(md5(i::text) || ' explain — naïve café? ', %(prompt_repeat)s) || '"'
FROM generate_series(1, %(rows)s) AS i;
INSERT INTO annotation_turn (dialogue_id, "index", role, content)
SELECT %(first_dialogue)s + i - 1, t.idx, t.role,
       t.role || ' turn ' || t.idx || E'\\n' || repeat(md5((i + t.idx)::text), 3)
FROM generate_series(1, %(rows)s) AS i, (VALUES (1, 'assistant'), (2, 'user')) AS t(idx, role)
WHERE i %% 10 = 0;

INSERT INTO annotation_response (text, variant_id, temperature, generation, created_at)
SELECT 'Answer ' || j || E':\\n' || repeat(md5(j::text) || ' "quoted" ünïcode, \\ slash ', %(response_repeat)s),
       CASE WHEN j %% 2 = 1 THEN %(variant_a)s ELSE %(variant_b)s END, 0.6 + (j %% 5) / 10.0, '{}'::jsonb, now()
FROM generate_series(1, 2 * %(rows)s) AS j;

INSERT INTO annotation_comparison (batch_id, dialogue_id, context_length, response_a_id, response_b_id, status,
    rating_count, slots_taken, label_choice, label_strength, label_safety, label_vote, is_gold, gold_choice,
    gold_strength, created_at)
SELECT %(first_batch)s + (i - 1) / %(per_batch)s, %(first_dialogue)s + i - 1, CASE WHEN i %% 10 = 0 THEN 3 ELSE 1 END,
       %(first_response)s + 2 * (i - 1), %(first_response)s + 2 * (i - 1) + 1, 'complete', 3, 3, '', '', '', '',
       false, '', '', now()
FROM generate_series(1, %(rows)s) AS i;

INSERT INTO annotation_assignment (comparison_id, annotator_id, swapped, status, leased_at, expires_at)
SELECT c.id, (%(annotators)s)[1 + (c.id * 7 + k) %% %(n_annotators)s], (c.id + k) %% 2 = 0, 'submitted', now(), now()
FROM annotation_comparison c, generate_series(0, 2) AS k;

INSERT INTO annotation_rating (assignment_id, comparison_id, annotator_id, chosen, strength, safety_label, rationale,
    seconds_spent, shown_left, idempotency_key, created_at)
SELECT a.id, a.comparison_id, a.annotator_id,
       CASE WHEN (a.comparison_id + a.id) %% 4 = 0 THEN 'b' ELSE 'a' END,
       (ARRAY['significantly_better', 'better', 'slightly_better', 'negligibly_better'])[1 + a.id %% 4],
       '', '', 20 + a.id %% 100, CASE WHEN a.swapped THEN 'b' ELSE 'a' END, 'bench-' || a.id, now()
FROM annotation_assignment a;
"""


def fill(rows: int, prompt_chars: int, response_chars: int) -> None:
    import datetime

    from django.db import connection

    from accounts.models import Role, User, Vendor
    from annotation.models import Batch
    from sampling.models import ModelVariant

    vendor = Vendor.objects.create(name="Bench vendor")
    annotators = User.objects.bulk_create(
        [User(username=f"bench-{i}", role=Role.ANNOTATOR, vendor=vendor) for i in range(ANNOTATORS)]
    )
    variant_a = ModelVariant.objects.create(name="bench-a", backend="external")
    variant_b = ModelVariant.objects.create(name="bench-b", backend="external")
    monday = datetime.date(2026, 1, 5)
    batches = [
        Batch.objects.create(name=f"Bench week {w + 1}", week=monday + datetime.timedelta(weeks=w))
        for w in range(BATCHES)
    ]
    params = {
        "rows": rows,
        "per_batch": -(-rows // BATCHES),
        "first_batch": batches[0].pk,
        "first_dialogue": 1,
        "first_response": 1,
        "variant_a": variant_a.pk,
        "variant_b": variant_b.pk,
        "annotators": [u.pk for u in annotators],
        "n_annotators": ANNOTATORS,
        "prompt_repeat": max(1, prompt_chars // 55),
        "response_repeat": max(1, response_chars // 65),
    }
    with connection.cursor() as cursor:
        for statement in FILL_SQL.split(";\n"):
            if statement.strip():
                cursor.execute(statement, params)
        cursor.execute("ANALYZE")


def run_build(name: str, batch_ids: list[int]) -> tuple[int, float]:
    from preference_data.services import dataset_build_create, dataset_build_run

    build = dataset_build_create(
        created_by=None, name=name, batch_ids=batch_ids, held_out_mode="fraction", test_fraction=0.1, enqueue=False
    )
    start = time.perf_counter()
    build = dataset_build_run(build_id=build.pk)
    seconds = time.perf_counter() - start
    assert build.status == "done", build.error
    return build.pk, seconds


def export_in_this_process(build_id: int, file_type: str) -> dict:
    """The child process: one export, its time and memory."""
    from preference_data.models import DatasetBuild
    from preference_data.services import dataset_export_create, dataset_export_run

    export = dataset_export_create(
        created_by=None, build=DatasetBuild.objects.get(pk=build_id), file_type=file_type, enqueue=False
    )
    before = vm_kib("VmRSS")
    start, cpu_start = time.perf_counter(), time.process_time()
    export = dataset_export_run(export_id=export.pk)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    assert export.status == "done", export.error
    return {
        "export_id": export.pk,
        "rows": export.rows_done,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "bytes": sum(f["bytes"] for f in export.files),
        "rss_before_mib": before / 1024,
        "peak_rss_mib": vm_kib("VmHWM") / 1024,
        "directory": str(export.directory),
        "files": export.files,
    }


def export_in_child(args, build_id: int, file_type: str) -> dict:
    command = [sys.executable, __file__, "--child-export", str(build_id), "--file-type", file_type]
    command += ["--server", args.server, "--database", args.database, "--media", args.media]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def check_files(result: dict, file_type: str) -> str:
    import pyarrow.parquet as pq

    rows = 0
    for f in result["files"]:
        path = Path(result["directory"]) / f["name"]
        if file_type == "jsonl":
            with open(path, "rb") as fh:
                rows += sum(block.count(b"\n") for block in iter(lambda fh=fh: fh.read(1 << 24), b""))
            if f["split"] == "train":
                with open(path, encoding="utf-8") as fh:
                    first = json.loads(fh.readline())
        else:
            parquet = pq.ParquetFile(path)
            rows += parquet.metadata.num_rows
            if f["split"] == "train":
                first = parquet.read_row_group(0).slice(0, 1).to_pylist()[0]
                groups = parquet.metadata.num_row_groups
    assert rows == result["rows"], (rows, result["rows"])
    assert first["chosen"][0]["role"] == "assistant" and first["prompt"][-1]["role"] == "user"
    detail = f"{rows:,} rows read back"
    return detail + (f", {groups} row groups in train" if file_type == "parquet" else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="comparisons to create and export")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="preflab_bench_export")
    parser.add_argument("--prompt-chars", type=int, default=220)
    parser.add_argument("--response-chars", type=int, default=650)
    parser.add_argument("--media", default=str(Path(tempfile.gettempdir()) / "preflab-bench-export"))
    parser.add_argument("--keep", action="store_true", help="keep the database and the files")
    parser.add_argument("--child-export", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--file-type", default="jsonl", help=argparse.SUPPRESS)
    args = parser.parse_args()
    database_url = f"{args.server}/{args.database}"

    if args.child_export:
        setup_django(database_url, args.media)
        print(json.dumps(export_in_this_process(args.child_export, args.file_type)))
        return

    print(f"Creating database {args.database} and {args.rows:,} comparisons ...", flush=True)
    create_database(args.server, args.database)
    try:
        setup_django(database_url, args.media)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        start = time.perf_counter()
        fill(args.rows, args.prompt_chars, args.response_chars)
        print(f"  filled in {time.perf_counter() - start:.0f} s (3 ratings per comparison)", flush=True)

        from annotation.models import Batch

        batch_ids = list(Batch.objects.order_by("id").values_list("id", flat=True))
        builds = {}
        for label, ids in (("three tenths", batch_ids[:3]), ("all", batch_ids)):
            build_id, seconds = run_build(f"bench {label}", ids)
            from preference_data.models import DatasetBuild

            total = DatasetBuild.objects.get(pk=build_id).counts["total"]
            builds[label] = build_id
            print(
                f"  built {label}: {total:,} pairs in {seconds:.1f} s ({total / seconds:,.0f} comparisons/s)",
                flush=True,
            )

        from django.db import connections

        connections.close_all()
        print()
        header = f"{'export':<14}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'CPU s':>8}{'MiB out':>10}"
        print(header + f"{'MiB/s':>8}{'RSS start':>11}{'RSS peak':>10}")
        results = {}
        for file_type in ("jsonl", "parquet"):
            for label in ("three tenths", "all"):
                result = export_in_child(args, builds[label], file_type)
                results[(file_type, label)] = result
                print(
                    f"{'TRL ' + file_type:<14}{result['rows']:>12,}{result['seconds']:>10.1f}"
                    f"{result['rows'] / result['seconds']:>12,.0f}{result['cpu_seconds']:>8.1f}"
                    f"{result['bytes'] / 2**20:>10,.0f}{result['bytes'] / 2**20 / result['seconds']:>8,.0f}"
                    f"{result['rss_before_mib']:>10,.0f}M{result['peak_rss_mib']:>9,.0f}M",
                    flush=True,
                )
                print(f"{'':<14}{check_files(result, file_type)}", flush=True)
        print()
        for file_type in ("jsonl", "parquet"):
            small, full = results[(file_type, "three tenths")], results[(file_type, "all")]
            growth = (full["peak_rss_mib"] - full["rss_before_mib"]) - (small["peak_rss_mib"] - small["rss_before_mib"])
            print(
                f"{file_type}: {full['rows'] / small['rows']:.1f}x the rows, peak memory "
                f"{small['peak_rss_mib']:.0f} -> {full['peak_rss_mib']:.0f} MiB "
                f"(growth during the export {growth:+.0f} MiB); {full['rows'] / full['seconds']:,.0f} rows/s"
            )
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_database(args.server, args.database)
            import shutil

            shutil.rmtree(args.media, ignore_errors=True)


if __name__ == "__main__":
    main()
