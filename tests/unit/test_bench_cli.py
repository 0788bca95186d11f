"""`omnid bench` wiring: the subcommand parses, and the expected grouping is the ground truth's."""

from __future__ import annotations

from omnid.benchmarks import cli as bench_cli
from omnid.benchmarks.workload import WorkloadSpec, ground_truth_of, labelled_events
from omnid.cli import build_parser

LABELLED = list(labelled_events(WorkloadSpec(customers=120, events=1_500, seed=5)))


def test_bench_subcommand_takes_the_engine_and_workload_size() -> None:
    argv = ["bench", "--engine", "memory", "--customers", "50", "--events", "500"]
    args = build_parser(argv).parse_args(argv)
    assert (args.engine, args.customers, args.events) == ("memory", 50, 500)
    assert args.func is bench_cli.run


def test_expected_groups_never_join_two_customers_and_cover_every_customer_identifier() -> None:
    truth = ground_truth_of(LABELLED)
    expected = bench_cli._expected_groups(LABELLED)
    assert expected.keys() == truth.owner_by_key.keys()
    owners_per_group: dict[str, set[str]] = {}
    for key, group in expected.items():
        owners_per_group.setdefault(group, set()).add(truth.owner_by_key[key])
    assert all(len(owners) == 1 for owners in owners_per_group.values())


def test_batch_baseline_agrees_with_union_find_and_sees_the_shared_tablet() -> None:
    batch = bench_cli._batch(LABELLED)
    assert batch["same_grouping"] is True
    truth = ground_truth_of(LABELLED)
    graph_keys = {key for keys in bench_cli._graph_key_sets(LABELLED) for key in keys}
    assert truth.shared_keys & graph_keys, "the rules keep a tablet's device id: limits stop it"
    assert not truth.junk_keys & graph_keys, "junk never reaches the graph"
