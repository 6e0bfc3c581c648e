"""The shop's routes answered without BentoML's dispatch (adapters/fast_lane.py): the same handler, the same
answer; anything the lane does not serve reaches BentoML untouched."""

from __future__ import annotations

from typing import Any

import bentoml
import httpx
import pytest
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.fast_lane import FastLane, FastLaneMiddleware


class Question(BaseModel):
    text: str = Field(min_length=1)
    limit: int = Field(20, ge=1, le=100)


class Answer(BaseModel):
    text: str
    limit: int
    scores: list[float]


@bentoml.service
class Shop:
    def __init__(self) -> None:
        self.asked: list[Question] = []

    @bentoml.api(route="/ask")
    async def ask(self, question: Question, /) -> Answer:
        self.asked.append(question)
        if question.text == "explode":
            raise RuntimeError("a bug")
        if question.text == "refuse":
            return JSONResponse({"error": "InvalidRequest", "field": "text"}, status_code=400)  # type: ignore[return-value]
        return Answer(text=question.text.upper(), limit=question.limit, scores=[0.5, 0.25])

    @bentoml.api(route="/two")
    async def two(self, a: int, b: int) -> int:
        return a + b


def served(lane: FastLane) -> tuple[httpx.AsyncClient, list[tuple[str, bytes]]]:
    """The lane in front of a stand-in for BentoML's routes, which records what reached it."""
    reached: list[tuple[str, bytes]] = []

    async def bentoml_route(request: Request) -> Response:
        reached.append((request.url.path, await request.body()))
        return JSONResponse({"answered_by": "bentoml"}, status_code=400 if request.url.path == "/ask" else 200)

    behind = Starlette(routes=[Route("/{path:path}", bentoml_route, methods=["GET", "POST"])])
    app = FastLaneMiddleware(behind, lane=lane)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop"), reached


def opened() -> tuple[FastLane, Any]:
    lane = FastLane(server_header="BentoML Service/shop")
    instance = Shop.inner()
    lane.open(instance, [Shop.apis["ask"]])
    return lane, instance


async def test_a_valid_request_is_answered_by_the_handler_as_bentoml_would() -> None:
    lane, instance = opened()
    client, reached = served(lane)
    response = await client.post("/ask", json={"text": "boots", "limit": 5})
    assert response.status_code == 200 and reached == []
    assert instance.asked == [Question(text="boots", limit=5)]
    expected = Answer(text="BOOTS", limit=5, scores=[0.5, 0.25]).model_dump_json().encode()
    assert response.content == expected  # BentoML's JSON serde writes model_dump_json() too
    assert response.headers["content-length"] == str(len(expected))
    assert response.headers["content-type"] == "application/json"
    assert response.headers["server"] == "BentoML Service/shop"


async def test_a_response_from_the_handler_goes_out_as_it_is() -> None:
    lane, _ = opened()
    client, reached = served(lane)
    response = await client.post("/ask", json={"text": "refuse"})
    assert response.status_code == 400 and response.json() == {"error": "InvalidRequest", "field": "text"}
    assert reached == []


@pytest.mark.parametrize("body", [b'{"text": ""}', b'{"text": "boots", "limit": 0}', b"not json", b""])
async def test_a_body_the_model_refuses_reaches_bentoml_with_its_bytes(body: bytes) -> None:
    lane, instance = opened()
    client, reached = served(lane)
    response = await client.post("/ask", content=body, headers={"content-type": "application/json"})
    assert response.json() == {"answered_by": "bentoml"}
    assert reached == [("/ask", body)] and instance.asked == []


async def test_what_the_lane_does_not_serve_reaches_bentoml() -> None:
    lane, instance = opened()
    client, reached = served(lane)
    await client.get("/ask")
    await client.post("/two", json={"a": 1, "b": 2})
    await client.post("/ask", content=b'{"text": "boots"}', headers={"content-type": "text/plain"})
    assert [path for path, _ in reached] == ["/ask", "/two", "/ask"] and instance.asked == []


async def test_json_with_a_charset_or_no_content_type_is_served() -> None:
    lane, instance = opened()
    client, reached = served(lane)
    await client.post("/ask", content=b'{"text": "a"}', headers={"content-type": "application/json; charset=utf-8"})
    await client.post("/ask", content=b'{"text": "b"}')
    assert reached == [] and [q.text for q in instance.asked] == ["a", "b"]


async def test_before_the_service_has_started_every_request_reaches_bentoml() -> None:
    client, reached = served(FastLane(server_header="BentoML Service/shop"))
    await client.post("/ask", json={"text": "boots"})
    assert reached == [("/ask", b'{"text":"boots"}')]


def test_only_handlers_of_one_model_can_be_served() -> None:
    lane = FastLane(server_header="BentoML Service/shop")
    with pytest.raises(TypeError, match="two"):
        lane.open(Shop.inner(), [Shop.apis["two"]])


def test_the_services_fast_lane_routes_can_be_served() -> None:
    import service

    lane = FastLane(server_header="BentoML Service/vitrine")
    lane.open(object(), [service.service_definition.apis[name] for name in service.FAST_LANE_ROUTES])
    assert {"/api/v1/search", "/api/v1/recommend", "/api/v1/feedback"} <= lane.paths


async def test_a_handler_that_fails_unexpectedly_answers_a_json_500() -> None:
    lane, _ = opened()
    client, reached = served(lane)
    response = await client.post("/ask", json={"text": "explode"})
    assert response.status_code == 500 and response.json()["error"] == "InternalError"
    assert reached == []


async def test_a_client_gone_before_its_body_arrived_is_not_answered() -> None:
    lane, instance = opened()
    sent: list[Any] = []

    async def behind(scope: Any, receive: Any, send: Any) -> None:
        sent.append("bentoml")

    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/ask", "headers": [(b"content-type", b"application/json")]}
    await FastLaneMiddleware(behind, lane=lane)(scope, gone, send)
    assert sent == [] and instance.asked == []
