"""`omnid import`: publish a CSV or JSON Lines export (tills, CRM) as ChannelEvents.

Every row is either published or listed in the rejected-rows report with its line and reason;
the exit status is 1 when any row was rejected or not acknowledged by Kafka.
"""

from __future__ import annotations

import argparse
import csv
import json
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from omnid.adapters.import_mapping import ImportMapping, channel_event_from_row
from omnid.adapters.segment import WriteKeyTarget
from omnid.adapters.sink import EventSink
from omnid.config import Settings
from omnid.contracts.channel_event import (
    Channel,
    encode_channel_event,
    events_topic,
    now_millis,
)
from omnid.contracts.codec import AvroCodec
from omnid.contracts.producer import make_producer
from omnid.errors import ConfigError, InvalidEvent, RejectionReason

NOT_DELIVERED = "not_delivered"


class FileFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"

    @classmethod
    def of(cls, path: Path) -> FileFormat:
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            return cls.JSONL
        if suffix in (".csv", ".tsv"):
            return cls.CSV
        raise ConfigError(f"{path}: cannot tell the format from the name; pass --format")


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str  # a RejectionReason value, or not_delivered
    detail: str


@dataclass
class ImportReport:
    published: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reject(self, row: RejectedRow) -> None:
        with self._lock:
            self.rejected.append(row)

    def delivered(self) -> None:
        with self._lock:
            self.published += 1


def _lines(stream: BinaryIO, advance: Any) -> Iterator[str]:
    """Decoded lines, reporting raw bytes read to the progress bar."""
    for raw in stream:
        advance(len(raw))
        yield raw.decode("utf-8-sig" if stream.tell() == len(raw) else "utf-8")


def _rows(path: Path, file_format: FileFormat, advance: Any) -> Iterator[tuple[int, Any]]:
    """(line number, row) pairs; a row that cannot be read is yielded as an InvalidEvent."""
    with path.open("rb") as stream:
        lines = _lines(stream, advance)
        if file_format is FileFormat.JSONL:
            for number, text in enumerate(lines, start=1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as error:
                    yield (
                        number,
                        InvalidEvent(
                            RejectionReason.UNDECODABLE,
                            f"not JSON: {error.msg} at column {error.colno}",
                        ),
                    )
                    continue
                if not isinstance(row, dict):
                    row = InvalidEvent(RejectionReason.INVALID_FIELD, "line is not a JSON object")
                yield number, row
            return
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        reader = csv.reader(lines, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        header = [name.strip() for name in header]
        yield 0, header
        line = reader.line_num + 1
        for record in reader:
            if record and len(record) != len(header):
                yield (
                    line,
                    InvalidEvent(
                        RejectionReason.INVALID_FIELD,
                        f"row has {len(record)} fields, the header has {len(header)}",
                    ),
                )
            elif record:
                yield line, dict(zip(header, record, strict=True))
            line = reader.line_num + 1


def import_file(
    path: Path,
    mapping: ImportMapping,
    target: WriteKeyTarget,
    sink: EventSink,
    codec: AvroCodec,
    *,
    topic_prefix: str = "",
    file_format: FileFormat | None = None,
    max_event_bytes: int = 32 * 1024,
    console: Console | None = None,
) -> ImportReport:
    """Publish every good row, report every bad one; returns once Kafka answered for all."""
    file_format = file_format or FileFormat.of(path)
    topic = events_topic(target.channel, topic_prefix)
    report = ImportReport()
    received_at = now_millis()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]} rows"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task(f"import {path.name}", total=path.stat().st_size, rows=0)
        rows_seen = 0

        def advance(size: int) -> None:
            progress.advance(task, size)

        for line, row in _rows(path, file_format, advance):
            if line == 0:
                missing = sorted(c for c in mapping.columns() if c not in row)
                if missing:
                    raise ConfigError(
                        f"{path}: the mapping names columns not in the header: {', '.join(missing)}"
                    )
                continue
            rows_seen += 1
            if rows_seen % 500 == 0:
                progress.update(task, rows=rows_seen)
            try:
                if isinstance(row, InvalidEvent):
                    raise row
                record = channel_event_from_row(row, mapping, target, received_at)
                payload = encode_channel_event(codec, record, max_event_bytes)
            except InvalidEvent as error:
                report.reject(RejectedRow(line, error.reason.value, error.detail))
                continue
            delivery = sink.send(topic, record["event_id"].encode(), payload)
            delivery.add_done_callback(_record_delivery(report, line))
        progress.update(task, rows=rows_seen)
        # librdkafka reports on every message within message.timeout.ms, so this ends.
        while sink.flush(timeout=5.0):
            pass
    report.rejected.sort(key=lambda row: row.line)
    return report


def _record_delivery(report: ImportReport, line: int) -> Any:
    def done(delivery: Future[None]) -> None:
        error = delivery.exception()
        if error is None:
            report.delivered()
        else:
            report.reject(RejectedRow(line, NOT_DELIVERED, str(error)))

    return done


def write_rejects(path: Path, rejected: list[RejectedRow]) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["line", "reason", "detail"])
        writer.writerows((row.line, row.reason, row.detail) for row in rejected)


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    console = Console(stderr=True)
    mapping = ImportMapping.load(args.mapping)
    if not args.file.is_file():
        raise ConfigError(f"{args.file}: no such file")
    channel = Channel(args.channel)
    source = args.source or mapping.source or f"{channel}-import"
    prefix = settings.topic_prefix if args.topic_prefix is None else args.topic_prefix
    sink = EventSink(make_producer(settings))
    try:
        report = import_file(
            args.file,
            mapping,
            WriteKeyTarget(channel, source),
            sink,
            AvroCodec.from_settings(settings),
            topic_prefix=prefix,
            file_format=FileFormat(args.format) if args.format else None,
            max_event_bytes=settings.max_event_bytes,
            console=console,
        )
    finally:
        sink.close()
    topic = events_topic(channel, prefix)
    console.print(f"published {report.published} rows to {topic}")
    if not report.rejected:
        return 0
    rejects_path = args.rejects or args.file.with_name(args.file.name + ".rejected.csv")
    write_rejects(rejects_path, report.rejected)
    reasons = Counter(row.reason for row in report.rejected)
    summary = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common())
    console.print(f"[red]rejected {len(report.rejected)} rows[/] ({summary}); see {rejects_path}")
    for row in report.rejected[:5]:
        console.print(f"  line {row.line}: {row.reason}: {row.detail}")
    return 1


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "import", help="publish a CSV / JSON Lines export (POS, CRM) as channel events"
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="CSV (.csv/.tsv) or JSON Lines")
    parser.add_argument(
        "--channel", required=True, choices=[c.value for c in Channel], help="e.g. pos or crm"
    )
    parser.add_argument("--mapping", required=True, type=Path, help="column mapping YAML")
    parser.add_argument(
        "--source", help="event source (default: the mapping's, or <channel>-import)"
    )
    parser.add_argument("--format", choices=[f.value for f in FileFormat], help="override")
    parser.add_argument(
        "--rejects", type=Path, help="rejected-rows report (default FILE.rejected.csv)"
    )
    parser.add_argument("--topic-prefix", help="topic prefix (default: OMNID_TOPIC_PREFIX)")
    parser.set_defaults(func=run)
