import httpx
from fastapi import FastAPI
from genhub_platform.errors import ApiError, install_error_handlers
from pydantic import BaseModel


class Body(BaseModel):
    amount: int


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things")
    async def create(body: Body) -> dict[str, int]:
        if body.amount > 10:
            raise ApiError(409, "too_many", "At most 10.", extra={"limit": 10})
        return {"amount": body.amount}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


async def _client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_api_error_is_problem_json_with_a_stable_code() -> None:
    async with await _client() as client:
        response = await client.post("/things", json={"amount": 11})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["error"] == {"code": "too_many", "message": "At most 10."}
    assert body["status"] == 409 and body["code"] == "too_many" and body["limit"] == 10


async def test_validation_errors_name_the_field() -> None:
    async with await _client() as client:
        response = await client.post("/things", json={"amount": "lots"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["details"][0]["field"] == "body.amount"


async def test_unknown_route_and_unexpected_errors_do_not_leak() -> None:
    async with await _client() as client:
        missing = await client.get("/nope")
        boom = await client.get("/boom")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert boom.status_code == 500
    assert "secret" not in boom.text
