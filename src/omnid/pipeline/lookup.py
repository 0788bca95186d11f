"""The lookup API every worker serves: a key's state lives on the worker that owns its partition,
so a request for another worker's key is forwarded there (one hop, never a loop)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from omnid.api_auth import Scope, authenticated_token, public, requires
from omnid.config import Settings
from omnid.identity import evidence, records
from omnid.identity.history_records import decode_history
from omnid.identity.normalisers import RejectedIdentifier
from omnid.identity.privacy import BLOCK_PREFIX, export_document, marker_key
from omnid.identity.rendering import profile_update_record
from omnid.identity.rules import IdentityRules, normalise
from omnid.identity.state import EventHistory, IdentifierState, ProfileState, ProfileStatus
from omnid.kafka.stages import Table
from omnid.pipeline.lookup_metrics import lookup_metrics
from omnid.pipeline.partitioning import partition_for
from omnid.pipeline.rate_limit import RateLimiter
from omnid.pipeline.runtime import Worker
from omnid.pipeline.standby import standby_members
from omnid.pipeline.state_store import StoreClosed
from omnid.tls import client_context

log = logging.getLogger(__name__)

ROUTED_HEADER = "X-Omnid-Routed"
# merged_into chains are short after path compression; a longer one means a bug, not a customer.
MAX_MERGE_HOPS = 32
# The partition count of a topic is asked of the broker (metadata) at most this long.
METADATA_TIMEOUT_S = 2.0
# An owner that could not answer (unreachable, or not ready itself) is asked again only after
# this; meanwhile a worker holding a copy of its partitions answers from it, marked stale.
OWNER_AWAY_S = 2.0


@dataclass(frozen=True)
class StaleAnswer:
    """Why a request was answered from a local copy that may be behind, and by how many
    changelog records when the copy is a standby replica (unknown otherwise)."""

    reason: str
    lag_records: int | None


# Set while a request is answered from a local copy that may be behind.
_STALE: ContextVar[StaleAnswer | None] = ContextVar("omnid_stale_answer", default=None)
# Set when this request found a key's owner away (the request is then answered once more).
_OWNER_AWAY: ContextVar[bool] = ContextVar("omnid_owner_away", default=False)


class NotHere(Exception):
    """The partition belongs to another worker (or to nobody, mid-rebalance)."""

    def __init__(self, owner_url: str | None, partition: int | None = None) -> None:
        super().__init__(owner_url)
        self.owner_url = owner_url
        self.partition = partition


class AwayPeers:
    """Peers that could not answer, each for OWNER_AWAY_S. A peer unreachable or stopping is
    away as a whole; one that answered 503 for a partition (it is restoring it and holds no
    copy) is away for that partition only, and still asked for its others: marking it away as
    a whole cut keys that did not move off for 2 s in the chaos run. Partition p of every
    input topic has one owner (co-partitioned), so the partition number is the unit."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[tuple[str, int | None], float] = {}

    def mark(self, url: str, partition: int | None) -> None:
        self._until[(url, partition)] = self._clock() + OWNER_AWAY_S

    def away(self, url: str, partition: int | None = None) -> bool:
        now = self._clock()
        whole = self._until.get((url, None), 0.0) > now
        return whole or (partition is not None and self._until.get((url, partition), 0.0) > now)


def peer_with_copy(
    partition: int, owner_url: str | None, members: Mapping[str, str], me: str, away: AwayPeers
) -> str | None:
    """The URL of a member (name -> URL) likely to hold a copy of `partition`, other than `me`
    and not away: the members in the order every worker places standbys
    (omnid.pipeline.standby), so the partition's standbys come first, then the others. The
    others matter right after an owner died: the roster keeps the dead member for seconds, the
    placement under the new owner may name it, and the copy is still on the member that stood
    by for the dead owner (a standby keeps what it tailed)."""
    owner = next((name for name, url in members.items() if url == owner_url), None)
    for name in standby_members(partition, owner, members, len(members)):
        url = members[name]
        if url != me and not away.away(url, partition):
            return url
    return None


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def strict_json(value: Any) -> str:
    """Standard JSON only: a NaN or an infinity stored before amounts and traits had to be
    finite is answered as null, never as the bare NaN strict parsers reject."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=strict_json)


def _error(status: int, error: str, **fields: Any) -> web.Response:
    return _json({"error": error, **fields}, status=status)


class LookupApi:
    def __init__(
        self, worker: Worker, rules: IdentityRules, admin: AdminClient, settings: Settings
    ) -> None:
        self.rate_limiter = RateLimiter(settings.lookup_rate_per_second, settings.lookup_burst)
        self._peer_tls = client_context(settings)
        self.worker = worker
        self.rules = rules
        self.admin = admin
        self.topics = worker.topics
        self._partitions: dict[str, int] = {}
        self._away = AwayPeers()
        self._http: aiohttp.ClientSession | None = None

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/identifiers/{type}/{value}", self.identifier)
        app.router.add_get("/v1/profiles/{profile_id}", self.profile)
        app.router.add_get("/v1/identifiers/{type}/{value}/export", self.identifier_export)
        app.router.add_get("/v1/profiles/{profile_id}/export", self.profile_export)
        app.router.add_get("/v1/profiles/{profile_id}/explain", self.explain)
        app.router.add_get("/v1/worker", self.worker_status)
        app.on_cleanup.append(self._close)

    async def _close(self, _app: web.Application) -> None:
        if self._http is not None:
            await self._http.close()

    # -- handlers ----------------------------------------------------------------------------

    @requires(Scope.PROFILES_READ)
    async def identifier(self, request: web.Request) -> web.Response:
        return await self._answer(request, lambda: self._identifier(request, export=False))

    @requires(Scope.PROFILES_READ)
    async def profile(self, request: web.Request) -> web.Response:
        return await self._answer(request, lambda: self._profile(request, export=False))

    # Access requests (GDPR art. 15/20): everything held about the person, for privacy staff.
    @requires(Scope.PRIVACY_WRITE)
    async def identifier_export(self, request: web.Request) -> web.Response:
        return await self._answer(request, lambda: self._identifier(request, export=True))

    @requires(Scope.PRIVACY_WRITE)
    async def profile_export(self, request: web.Request) -> web.Response:
        return await self._answer(request, lambda: self._profile(request, export=True))

    async def _answer(
        self, request: web.Request, answer: Callable[[], Awaitable[web.Response]]
    ) -> web.Response:
        """The answer, throttled per client. When a key's owner turned out away (SIGKILLed
        and not yet out of the group, or not ready itself), the request is answered once more:
        the owner is marked away now, so a copy held here (a standby) answers, marked stale.
        From SIGTERM on, 503 `stopping`: the loop is about to close the tables."""
        if (throttled := self._throttled(request)) is not None:
            return throttled
        if self.worker.stopping.is_set():
            return _error(503, "stopping")
        try:
            response = await answer()
            if _OWNER_AWAY.get():
                _OWNER_AWAY.set(False)
                response = await answer()
        except StoreClosed:  # closed under a request that began before the SIGTERM
            return _error(503, "stopping")
        return response

    def _throttled(self, request: web.Request) -> web.Response | None:
        """429 when this client (its API token: lookups always need one) is over its rate."""
        client = f"token:{authenticated_token(request).name}"
        wait = self.rate_limiter.retry_after(client)
        if wait is None:
            return None
        lookup_metrics().rate_limited.inc()
        return web.json_response(
            {"error": "rate_limited", "detail": f"over {self.rate_limiter.rate:g} lookups/s"},
            status=429,
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )

    async def _identifier(self, request: web.Request, export: bool) -> web.Response:
        identifier_type = request.match_info["type"]
        try:
            identifier = normalise(self.rules, identifier_type, request.match_info["value"])
        except RejectedIdentifier as error:
            return _error(400, "invalid_identifier", reason=error.reason.value, detail=error.detail)
        try:
            raw = await self._owned_value(Table.IDENTIFIERS, identifier.key, request)
        except NotHere as elsewhere:
            return await self._forward(elsewhere, request)
        state: IdentifierState | None = (
            records.decode(raw, identifier.key) if raw is not None else None
        )
        marker = self._marker(identifier.key) if state is None else None
        if marker is not None:
            # A suppression marker: the person was erased, or the review blocked the value.
            blocked = (marker.suppressed_by or "").startswith(BLOCK_PREFIX)
            return _error(
                404, "blocked_identifier" if blocked else "erased_identifier", type=identifier_type
            )
        if state is None or state.owner is None:
            return _error(404, "unknown_identifier", type=identifier_type)
        return await self._profile_response(state.owner, state.owner, request, export)

    def _marker(self, identifier_key: str) -> IdentifierState | None:
        """The suppression marker that stands where the identifier was, if any (read on its
        owning worker)."""
        marker = marker_key(self.worker.processor.suppression_secret, identifier_key)
        raw = self.worker.stores[Table.IDENTIFIERS].get(marker)
        return records.decode(raw, marker) if raw is not None else None

    async def _profile(self, request: web.Request, export: bool) -> web.Response:
        profile_id = request.match_info["profile_id"]
        try:
            raw = await self._owned_value(Table.PROFILES, profile_id, request)
        except NotHere as elsewhere:
            return await self._forward(elsewhere, request)
        if raw is None:
            return _error(404, "unknown_profile", profile_id=profile_id)
        state: ProfileState = records.decode(raw)
        if state.status is ProfileStatus.MERGED and state.merged_into:
            return await self._profile_response(state.merged_into, profile_id, request, export)
        return self._render(state, profile_id, export)

    @requires(Scope.PROFILES_READ)
    async def explain(self, request: web.Request) -> web.Response:
        """The profile as a graph of evidence; with `from` and `to` (type:value), the shortest
        evidence path between those two identifiers of the profile."""
        return await self._answer(request, lambda: self._explain(request))

    async def _explain(self, request: web.Request) -> web.Response:
        requested = request.match_info["profile_id"]
        ends = []
        for name in ("from", "to"):
            given = request.query.get(name)
            if given is None:
                continue
            identifier_type, _, value = given.partition(":")
            try:
                ends.append(normalise(self.rules, identifier_type, value).key)
            except RejectedIdentifier as error:
                return _error(400, "invalid_identifier", parameter=name, reason=error.reason.value)
        if len(ends) == 1:
            return _error(400, "invalid_request", detail="give both from and to, or neither")
        current = requested
        for hop in range(MAX_MERGE_HOPS):
            try:
                raw = await self._owned_value(
                    Table.PROFILES, current, request if hop == 0 else None
                )
            except NotHere as elsewhere:
                if elsewhere.owner_url is None:
                    return _error(503, "rebalancing")
                query = f"?{request.rel_url.query_string}" if request.rel_url.query_string else ""
                body, status = await self._get(
                    elsewhere, f"/v1/profiles/{current}/explain{query}", request
                )
                if status == 200:
                    body["requested_profile_id"] = requested
                return _json(body, status=status)
            if raw is None:
                return _error(404, "unknown_profile", profile_id=current)
            state: ProfileState = records.decode(raw)
            if state.status is ProfileStatus.MERGED and state.merged_into:
                current = state.merged_into
                continue
            if state.status is ProfileStatus.ERASED:
                return _error(404, "erased_profile", profile_id=state.profile_id)
            stored = self.worker.stores[Table.HISTORY].get(current)
            state.history = decode_history(stored) if stored is not None else EventHistory()
            body = evidence.explain(state, self.rules)
            body["requested_profile_id"] = requested
            if ends:
                missing = [key for key in ends if key not in state.identifiers]
                if missing:
                    return _error(404, "identifier_not_in_profile", profile_id=current)
                body["path"] = evidence.path(state, ends[0], ends[1])
            return _json(body)
        return _error(500, "merge_chain_too_long", profile_id=requested)

    @public  # partitions and counts only, no personal data; probes and `make run` poll it
    async def worker_status(self, _request: web.Request) -> web.Response:
        status = self.worker.status
        return _json(
            {
                "name": status.name,
                "assigned": sorted(f"{t}:{p}" for t, p in status.assigned),
                "ready": sorted(f"{t}:{p}" for t, p in status.ready),
                "restored_records": status.restored_records,
                "last_restore": status.last_restore,
                # Table partitions kept warm here for other workers: changelog records behind.
                "standby": {
                    f"{lag.table.value}:{lag.partition}": lag.lag
                    for lag in self.worker.standby.lags()
                },
                "standby_records": self.worker.standby.applied,
                "processed": status.processed,
                "table_sizes": {t.value: s.count() for t, s in self.worker.stores.items()},
            }
        )

    # -- following a profile across workers --------------------------------------------------

    async def _profile_response(
        self, profile_id: str, requested: str, request: web.Request, export: bool
    ) -> web.Response:
        """The surviving profile of `profile_id`, following merged_into wherever it lives."""
        current = profile_id
        for _ in range(MAX_MERGE_HOPS):
            try:
                raw = await self._owned_value(Table.PROFILES, current, None)
            except NotHere as elsewhere:
                if elsewhere.owner_url is None:
                    return _error(503, "rebalancing")
                suffix = "/export" if export else ""
                body, status = await self._get(
                    elsewhere, f"/v1/profiles/{current}{suffix}", request
                )
                if status == 200:
                    body["requested_profile_id"] = requested
                return _json(body, status=status)
            if raw is None:
                return _error(404, "unknown_profile", profile_id=current)
            state: ProfileState = records.decode(raw)
            if state.status is ProfileStatus.MERGED and state.merged_into:
                current = state.merged_into
                continue
            return self._render(state, requested, export)
        return _error(500, "merge_chain_too_long", profile_id=requested)

    @staticmethod
    def _render(state: ProfileState, requested: str, export: bool) -> web.Response:
        if state.status is ProfileStatus.ERASED:
            return _error(404, "erased_profile", profile_id=state.profile_id)
        body = export_document(state) if export else profile_update_record(state)
        body["requested_profile_id"] = requested
        stale = _STALE.get()
        if stale is not None:
            body["stale"] = True
            body["stale_reason"] = stale.reason
            if stale.lag_records is not None:
                body["stale_lag_records"] = stale.lag_records
        return _json(body)

    # -- routing -----------------------------------------------------------------------------

    async def _owned_value(
        self, table: Table, key: str, request: web.Request | None
    ) -> bytes | None:
        """The key's stored value if this worker owns its partition, else NotHere(owner).

        While nobody can answer fresh — the group is rebalancing, this worker is restoring the
        partition, the owner is away (SIGKILLed, its session not timed out yet), or the broker
        is away and the owner unknown — a worker that holds a local copy of the partition (a
        standby replica, or it owned it before) answers from it, marked stale: an answer that
        may miss the latest events beats a 503 or a hang."""
        topic = self.topics.source_of(table)
        partition = partition_for(key, await self._partition_count(topic))
        store = self.worker.stores[table]
        if (topic, partition) in self.worker.status.ready:
            return store.get(key)
        held = store.checkpoint(partition) > 0
        me = self.worker.options.web_url
        if request is not None and request.headers.get(ROUTED_HEADER):
            if held:
                owner = self._owner(topic, partition)
                reason = "owner_away" if owner not in (None, me) else "rebalancing"
                return self._stale(table, partition, key, reason)
            raise NotHere(None)  # routed here by a peer with an older view: do not bounce
        owner = self._owner(topic, partition)
        if held:
            if owner is None:
                return self._stale(table, partition, key, "rebalancing")
            if owner == me:
                return self._stale(table, partition, key, "not_ready")
            if self._away.away(owner, partition):
                return self._stale(table, partition, key, "owner_away")
        elif owner is None or owner == me or self._away.away(owner, partition):
            # No copy here, and no owner that can answer: a worker standing by for it can.
            standby = self._standby_of(partition, owner)
            if standby is not None:
                raise NotHere(standby, partition)
        raise NotHere(owner, partition)

    def _standby_of(self, partition: int, owner_url: str | None) -> str | None:
        members = {member.name: member.url for member in self.worker.roster.view().members}
        return peer_with_copy(
            partition, owner_url, members, self.worker.options.web_url, self._away
        )

    def _stale(self, table: Table, partition: int, key: str, reason: str) -> bytes | None:
        _STALE.set(StaleAnswer(reason, self.worker.standby.lag(table, partition)))
        lookup_metrics().stale.inc()
        return self.worker.stores[table].get(key)

    async def _partition_count(self, topic: str) -> int:
        if topic not in self._partitions:
            try:
                metadata = await asyncio.to_thread(
                    self.admin.list_topics, topic, METADATA_TIMEOUT_S
                )
            except KafkaException:
                raise NotHere(None) from None  # broker away and the count never known: 503
            found = metadata.topics.get(topic)
            if found is None or not found.partitions:
                raise NotHere(None)  # an answer without the topic (broker away): not cached
            self._partitions[topic] = len(found.partitions)
        return self._partitions[topic]

    def _owner(self, topic: str, partition: int) -> str | None:
        """The owner's URL as the roster tells it: read from memory, so an answer never waits
        on the broker; while the broker is away the last known owners stand."""
        return self.worker.roster.view().owners.get((topic, partition))

    async def _forward(self, elsewhere: NotHere, request: web.Request) -> web.Response:
        if elsewhere.owner_url is None:
            return _error(503, "rebalancing")
        body, status = await self._get(elsewhere, str(request.rel_url), request)
        return _json(body, status=status)

    async def _get(
        self, elsewhere: NotHere, path: str, request: web.Request
    ) -> tuple[dict[str, Any], int]:
        """GET from the peer that owns the key, with the caller's own credentials: every worker
        reads the same tokens file, so the peer authorizes the caller, not this worker. A peer
        that cannot answer is marked away (AwayPeers): as a whole when unreachable or stopping,
        for the key's partition when it answered 503 for it."""
        owner_url = elsewhere.owner_url
        assert owner_url is not None
        if self._away.away(owner_url, elsewhere.partition):
            _OWNER_AWAY.set(True)
            return {"error": "owner_unreachable"}, 503
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=10),
                connector=aiohttp.TCPConnector(ssl=self._peer_tls),
            )
        headers = {ROUTED_HEADER: "1", "Authorization": request.headers.get("Authorization", "")}
        try:
            async with self._http.get(f"{owner_url}{path}", headers=headers) as response:
                body, status = await response.json(), response.status
        except (aiohttp.ClientError, TimeoutError):
            body, status = {"error": "owner_unreachable"}, 503
        if status == 503:
            partition_only = body.get("error") == "rebalancing"
            self._away.mark(owner_url, elsewhere.partition if partition_only else None)
            _OWNER_AWAY.set(True)
        return body, status
