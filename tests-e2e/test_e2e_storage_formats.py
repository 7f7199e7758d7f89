"""Storage through the whole stack: requested output formats, thumbnails, download URLs, and
identical outputs stored once. Storage's internal endpoints are called directly (the gateway's
/v1/files and /v1/uploads faces are tested by the gateway's own suite)."""

import io

import httpx
from e2e_support import Endpoints, Tenant, settled_job
from PIL import Image


async def _generate(tenant: Tenant, user_id: str, **input_params: object):
    accepted = await tenant.client.generate(user_id, "mock", "a lighthouse at dusk", **input_params)
    job = await settled_job(tenant.client, accepted.job_id)
    assert job.status == "succeeded", job
    return job


async def test_jpeg_job_is_published_as_jpeg_with_thumbnail_and_download_url(
    tenant: Tenant, user_id: str, endpoints: Endpoints
) -> None:
    await tenant.client.grant_tokens(user_id, 100, "e2e storage")
    job = await _generate(tenant, user_id, output_format="jpeg")

    [output] = job.outputs
    assert output.content_type == "image/jpeg"
    data = await tenant.client.download(output.url)
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and (image.width, image.height) == (output.width, output.height)
    assert not image.getexif()

    base = f"{endpoints.storage}/internal/apps/{tenant.app_id}/jobs/{job.job_id}/files"
    async with httpx.AsyncClient(timeout=10) as client:
        [listed] = (await client.get(base)).json()["files"]
        assert listed["key"].endswith(".jpg") and listed["expired"] is False
        thumb = await client.get(listed["thumbnail_url"])
        assert thumb.status_code == 200
        assert max(Image.open(io.BytesIO(thumb.content)).size) <= 256

        link = await client.get(f"{base}/0/url", params={"download": "true", "filename": "dusk"})
        assert link.status_code == 200
        served = await client.get(link.json()["url"])
        assert served.content == data
        assert served.headers["content-disposition"] == 'attachment; filename="dusk.jpg"'

        other_app = await client.get(
            f"{endpoints.storage}/internal/apps/00000000-0000-0000-0000-000000000001"
            f"/jobs/{job.job_id}/files/0/url"
        )
        assert other_app.status_code == 404


async def test_pdf_job_uses_the_requested_dpi(
    tenant: Tenant, user_id: str, endpoints: Endpoints
) -> None:
    await tenant.client.grant_tokens(user_id, 100, "e2e storage")
    job = await _generate(tenant, user_id, output_format="pdf", dpi=300)

    [output] = job.outputs
    assert output.content_type == "application/pdf"
    pdf = await tenant.client.download(output.url)
    assert pdf.startswith(b"%PDF-")
    points = output.width * 72 / 300
    assert f"{points:g}".encode() in pdf  # the page is width/dpi inches wide


async def test_identical_outputs_of_one_app_share_one_object(
    tenant: Tenant, user_id: str, endpoints: Endpoints
) -> None:
    await tenant.client.grant_tokens(user_id, 100, "e2e storage")
    jobs = [await _generate(tenant, user_id, seed=4242) for _ in range(2)]

    async with httpx.AsyncClient(timeout=10) as client:
        listed = [
            (
                await client.get(
                    f"{endpoints.storage}/internal/apps/{tenant.app_id}/jobs/{job.job_id}/files"
                )
            ).json()["files"][0]
            for job in jobs
        ]
    # One object, referenced by both jobs (whether or not the orchestrator served a cache hit).
    assert listed[0]["sha256"] == listed[1]["sha256"]
    assert listed[0]["key"] == listed[1]["key"]
    assert listed[0]["key"].startswith(f"outputs/{tenant.app_id}/{jobs[0].job_id}/")
