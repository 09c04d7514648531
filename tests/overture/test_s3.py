"""The reader through a local S3-compatible server (moto's server mode) via endpoint_override."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from prospectpro.config import Settings
from prospectpro.domain.area import Area
from prospectpro.gate.errors import ProviderError
from prospectpro.providers import overture
from prospectpro.providers.overture import ReadStats, locate, open_dataset, read_box
from prospectpro.store.db import Database
from tests.overture.files import place, write

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

BUCKET = "overturemaps-test"
PREFIX = "release/2025-12-17.0/theme=places/type=place"


@pytest.fixture
def s3_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "test")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-west-2")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    client.put_bucket_policy(
        Bucket=BUCKET,
        Policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject",'
        f'"s3:ListBucket"],"Resource":["arn:aws:s3:::{BUCKET}","arn:aws:s3:::{BUCKET}/*"]}}]}}',
    )
    for i, lon in enumerate((-97.74, -90.0)):
        path = write(
            tmp_path / f"part-{i}.parquet",
            [place(f"08s{i}{j}", f"Dentist {i}{j}", 30.27 + j * 0.001, lon) for j in range(4)],
            row_group_size=2,
        )
        client.upload_file(str(path), BUCKET, f"{PREFIX}/part-{i}.parquet")
    try:
        yield url
    finally:
        server.stop()


def test_reading_through_an_s3_endpoint_and_caching_the_area(s3_url: str, db: Database, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", overture_path=f"s3://{BUCKET}/{PREFIX}/", overture_s3_endpoint=s3_url
    )
    location = locate(settings)
    assert location.remote and location.release == "2025-12-17.0"
    stats = ReadStats()
    table = read_box(open_dataset(location), (30.2, -97.8, 30.3, -97.7), stats=stats)
    assert sorted(table.column("id").to_pylist()) == ["08s00", "08s01", "08s02", "08s03"]
    assert (stats.row_groups_total, stats.row_groups_read) == (4, 2)

    source = overture.OverturePlacesSource(db, settings)
    area = Area(30.2715, -97.74, 2000.0, "Austin", "US")
    assert len(source.table_for(area)) == 4
    # The area is now in the local cache: with the server's address wrong, it is still served.
    offline = settings.model_copy(update={"overture_s3_endpoint": "http://127.0.0.1:9"})
    assert len(overture.OverturePlacesSource(db, offline).table_for(area)) == 4


def test_an_unreachable_endpoint_fails_fast(db: Database, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        overture_path=f"s3://{BUCKET}/{PREFIX}/",
        overture_s3_endpoint="http://127.0.0.1:9",
        overture_connect_timeout=1.0,
    )
    with pytest.raises(ProviderError) as caught:
        overture.OverturePlacesSource(db, settings).table_for(Area(30.27, -97.74, 2000.0, "Austin", "US"))
    assert caught.value.provider == "overture"


def test_local_first_places_never_ask_a_remote_release(db: Database, tmp_path: Path) -> None:
    from prospectpro.domain.campaign import Tier
    from prospectpro.places.importer import ensure_bundled_places
    from prospectpro.places.locations import resolve_location
    from prospectpro.providers.protocols import CallContext, DiscoveryQuery

    ensure_bundled_places(db)
    settings = Settings(
        data_dir=tmp_path / "data",
        overture_path=f"s3://{BUCKET}/{PREFIX}/",
        overture_s3_endpoint="http://127.0.0.1:9",  # would fail if asked
        overture_connect_timeout=1.0,
    )
    helsinki = resolve_location(db, "Helsinki")
    query = DiscoveryQuery(tags=("amenity=cafe",), type_name="cafe", area=helsinki, wanted=10)
    ctx = CallContext(job_id="j", owner_id="o", tier=Tier.base, wanted=10, budget_limit=Decimal("0"))
    assert list(overture.OverturePlacesSource(db, settings).discover(query, ctx)) == []
