"""Feeds a small seeded omnichannel dataset (web, app, POS, email, CRM, call centre, loyalty) to
the events topics, so `make run` shows profiles forming and merging. Synthetic values only."""

from __future__ import annotations

import argparse

from omnid.benchmarks.workload import WorkloadSpec, channel_events
from omnid.config import Settings
from omnid.contracts import AvroCodec
from omnid.pipeline.topic_names import PipelineTopics
from omnid.testing.topic_io import publish_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=25)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    settings = Settings()
    # Without the till's generic values (store phone, placeholder email, family cards): the
    # sample's story is one customer merged across channels, the same feed as before they came.
    spec = WorkloadSpec(
        customers=args.customers,
        events=args.events,
        seed=args.seed,
        till_placeholder_rate=0.0,
        family_cards=0,
    )
    sent = publish_events(
        settings.kafka_client_config(),
        PipelineTopics.under(settings.topic_prefix),
        channel_events(spec),
        AvroCodec.from_settings(settings),
    )
    print(f"feed: published {sent} sample events of {args.customers} customers")


if __name__ == "__main__":
    main()
