"""Confluent wire format through confluent-kafka's real SchemaRegistryClient, talking HTTP to a
minimal in-process registry (the two REST calls omnid uses)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web

from omnid.config import Settings
from omnid.contracts import CHANNEL_EVENT, AvroCodec, Framing, new_channel_event


class TinyRegistry:
    """POST /subjects/{subject}/versions and GET /schemas/ids/{id}, as Confluent's REST API."""

    def __init__(self) -> None:
        self.schemas: list[str] = []
        self.subjects: list[str] = []

    async def register(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.subjects.append(request.match_info["subject"])
        if body["schema"] not in self.schemas:
            self.schemas.append(body["schema"])
        return web.json_response({"id": self.schemas.index(body["schema"]) + 1})

    async def by_id(self, request: web.Request) -> web.Response:
        schema_id = int(request.match_info["id"])
        if not 1 <= schema_id <= len(self.schemas):
            return web.json_response({"error_code": 40403, "message": "not found"}, status=404)
        return web.json_response({"schema": self.schemas[schema_id - 1]})


@pytest.fixture
def registry() -> Iterator[tuple[str, TinyRegistry]]:
    state = TinyRegistry()
    app = web.Application()
    app.router.add_post("/subjects/{subject}/versions", state.register)
    app.router.add_get("/schemas/ids/{id}", state.by_id)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    started = threading.Event()
    address: list[str] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        host, port = runner.addresses[0][:2]
        address.append(f"http://{host}:{port}")
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(10)
    yield address[0], state
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_registry_url_switches_to_confluent_framing_and_round_trips(
    registry: tuple[str, TinyRegistry],
) -> None:
    url, state = registry
    codec = AvroCodec.from_settings(Settings(schema_registry_url=url))
    event = new_channel_event(
        event_id="e-1",
        channel="web",
        source="s",
        event_type="identify",
        identifiers=[("email", "a@b.example")],
        occurred_at=1_763_900_000_000,
        received_at=1_763_900_000_001,
    )
    payload = codec.encode(CHANNEL_EVENT, event)
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == 1
    assert state.subjects == [CHANNEL_EVENT]
    # A fresh decoder knows nothing but the registry address: it fetches the schema by id.
    fresh = AvroCodec.from_settings(Settings(schema_registry_url=url))
    decoded = fresh.decode(payload, expected=CHANNEL_EVENT)
    assert decoded.framing is Framing.CONFLUENT
    assert decoded.record["event_id"] == "e-1"
    assert decoded.record["identifiers"] == [{"type": "email", "value": "a@b.example"}]
