"""`omnid worker`: one pipeline worker — the Kafka loop in a thread, the lookup API, /metrics."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import logging
import os
import signal
import socket
import ssl
import threading
from pathlib import Path

from aiohttp import web

from omnid.api_auth import ApiTokens, auth_middleware
from omnid.api_docs import add_openapi_route
from omnid.config import Settings
from omnid.console.web import OperationsApi, add_console_routes
from omnid.contracts import AvroCodec
from omnid.identity.rules import IdentityRules
from omnid.observability.http import add_operations_routes
from omnid.pipeline.identity_ops_api import IdentityOperationsApi
from omnid.pipeline.lookup import LookupApi
from omnid.pipeline.outage import WorkerStopped
from omnid.pipeline.privacy_api import PrivacyApi
from omnid.pipeline.processor import StageProcessor
from omnid.pipeline.quarantine_api import QuarantineApi
from omnid.pipeline.runtime import (
    BATCH_LINGER_S,
    BATCH_RECORDS,
    GroupProtocol,
    ProcessingGuarantee,
    Worker,
    WorkerOptions,
)
from omnid.pipeline.stage_metrics import stage_metrics
from omnid.pipeline.topic_names import PipelineTopics
from omnid.rules_file import load_rules
from omnid.tls import scheme, server_context

log = logging.getLogger("omnid.worker")

# SIGTERM to exit: the open batch finishes (or aborts), commits, the consumer leaves the group,
# the HTTP server closes. Well below Kubernetes' default 30 s grace period.
SHUTDOWN_GRACE_S = 10.0
HTTP_SHUTDOWN_S = 2.0

# The cyclic garbage collector's thresholds in a worker (CPython's default: 700, 10, 10). The
# worker makes almost no cyclic garbage (a 20,000-event run: ~2,400 objects found by all its
# collections) but holds hundreds of thousands of tracked objects in its bounded caches, which
# every older-generation collection walks: at the default thresholds the collector took 11% of
# the worker's CPU (1.3 of 12.2 s), at these 3% (0.3 s). Objects alive once the worker is set
# up (modules, rules, schemas) are frozen out of the collections altogether.
GC_THRESHOLDS = (50_000, 20, 10)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "worker", help="run a pipeline worker (events -> profiles, lookup API on --port)"
    )
    parser.add_argument(
        "--name",
        default=f"{socket.gethostname()}-{os.getpid()}",
        help="unique per live worker; reuse it on restart (fences the old one)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="RocksDB folder of this worker (default .state/worker-NAME)",
    )
    parser.add_argument(
        "--host", default=None, help="lookup API bind address (default: OMNID_WORKER_HOST)"
    )
    parser.add_argument("--port", type=int, default=8081, help="lookup API and /metrics port")
    parser.add_argument(
        "--advertised-url",
        default=None,
        help="how peers reach this worker (default http://127.0.0.1:PORT)",
    )
    parser.add_argument(
        "--guarantee",
        choices=[g.value for g in ProcessingGuarantee],
        default=ProcessingGuarantee.EXACTLY_ONCE.value,
    )
    parser.add_argument("--group", default=None, help="consumer group (default from prefix)")
    parser.add_argument("--batch-size", type=int, default=BATCH_RECORDS)
    parser.add_argument(
        "--batch-linger-ms",
        type=float,
        default=BATCH_LINGER_S * 1_000,
        help="after a batch's first record, how long to gather more (0: only what has arrived)",
    )
    parser.add_argument(
        "--group-protocol",
        choices=[p.value for p in GroupProtocol],
        default=GroupProtocol.CONSUMER.value,
        help="consumer (KIP-848, incremental: only partitions that move pause) or classic "
        "(eager: every rebalance pauses everything)",
    )
    parser.add_argument(
        "--standby-replicas",
        type=int,
        default=1,
        help="warm copies kept of each table partition on other workers, by tailing its "
        "changelog (0: none; with one worker there is nobody to stand by for)",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # `kill -USR1 <pid>` writes every thread's stack to the log: where a stuck worker waits.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    settings = Settings()
    topics = PipelineTopics.under(settings.topic_prefix)
    options = WorkerOptions(
        name=args.name,
        data_dir=args.data_dir or Path(".state") / f"worker-{args.name}",
        web_url=args.advertised_url or f"{scheme(settings)}://127.0.0.1:{args.port}",
        guarantee=ProcessingGuarantee(args.guarantee),
        group=args.group,
        batch_size=args.batch_size,
        batch_linger_s=args.batch_linger_ms / 1_000,
        standby_replicas=args.standby_replicas,
        group_protocol=GroupProtocol(args.group_protocol),
    )
    rules = load_rules(settings.rules_file)
    stage_metrics().allow_identifier_types(rules.identifier_types)
    processor = StageProcessor(
        rules,
        AvroCodec.from_settings(settings),
        topics,
        settings.max_event_bytes,
        suppression_secret=settings.suppression_secret,
    )
    tokens = ApiTokens.load(settings.api_tokens_file)
    worker = Worker(settings, options, processor, topics)
    host = args.host or settings.worker_host
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return asyncio.run(
        _serve(worker, processor.rules, tokens, host, args.port, server_context(settings))
    )


def worker_application(worker: Worker, rules: IdentityRules, tokens: ApiTokens) -> web.Application:
    """Every HTTP route a worker serves, behind the token check (each route declares its scope;
    a test asks every route for 401 and 403)."""
    app = web.Application(middlewares=[auth_middleware(tokens)])
    add_operations_routes(app, worker.operations.readiness)
    LookupApi(worker, rules, worker.admin, worker.settings).routes(app)
    PrivacyApi(worker.settings, worker.topics, rules, worker.processor.codec).routes(app)
    operations = IdentityOperationsApi(
        worker.settings, worker.topics, rules, worker.processor.codec
    )
    operations.routes(app)
    QuarantineApi(worker.settings, worker.topics, rules, worker.processor.codec, operations).routes(
        app
    )
    OperationsApi(worker).routes(app)
    add_console_routes(app, rules, tokens)
    add_openapi_route(app, "worker")
    return app


async def _serve(
    worker: Worker,
    rules: IdentityRules,
    tokens: ApiTokens,
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
) -> int:
    loop = asyncio.get_running_loop()
    finished = asyncio.Event()
    failure: list[BaseException] = []

    def consume() -> None:
        try:
            worker.run()
        except WorkerStopped as error:  # says why; no traceback for a known cause
            failure.append(error)
            log.error("worker stopped: %s", error)
        except BaseException as error:  # reported below; the process exits non-zero
            failure.append(error)
            log.exception("worker loop failed")
        finally:
            loop.call_soon_threadsafe(finished.set)

    app = worker_application(worker, rules, tokens)
    # aiohttp waits up to 60 s for open (keep-alive) connections on cleanup by default: a
    # polling lookup client alone held a SIGTERMed worker for the whole Kubernetes grace period.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=HTTP_SHUTDOWN_S)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=tls).start()

    def stop(signum: int) -> None:
        if worker.stopping.is_set():
            return
        log.info(
            "%s: finishing the open batch, committing, leaving the group",
            signal.Signals(signum).name,
        )
        worker.stopping.set()
        loop.call_later(SHUTDOWN_GRACE_S, give_up)

    def give_up() -> None:
        # Safe, if not tidy: the open transaction is aborted by its timeout or by the next
        # worker of this name, and the group moves the partitions after the session timeout.
        log.error("not stopped within %.0f s: exiting without a clean shutdown", SHUTDOWN_GRACE_S)
        os._exit(1)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    thread = threading.Thread(target=consume, name="omnid-consume", daemon=True)
    thread.start()
    log.info(
        "worker %s serving on %s:%d (%s)", worker.options.name, host, port, worker.options.web_url
    )
    await finished.wait()
    await runner.cleanup()
    return 1 if failure else 0
