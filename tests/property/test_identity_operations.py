"""Split, unban and merge by hand injected at random points among random events, over any
partitions and interleavings: invariants 1-6 as before, 9 after every step, 11 per side, and
every explain path valid."""

from __future__ import annotations

from hypothesis import event, given, note
from hypothesis import strategies as st

from omnid.identity.commands import Command, MergeByHand, Split, Unban
from omnid.identity.components import strong_components
from omnid.identity.evidence import path
from omnid.identity.intake import usable_identifiers
from omnid.identity.invariants import check_all, check_bans, check_limits, check_no_weak_merge
from omnid.identity.model import Event, Identifier
from omnid.identity.rules import IdentityRules, normalise
from omnid.identity.simulator import Operation, SimulationResult, Simulator
from omnid.identity.state import Ban, IdentifierState, ProfileState

from .graph_events import POOLS, event_lists, phases
from .test_identity_invariants import RULES, TIGHT, delivery


def _valid(identifier: Identifier) -> bool:
    return bool(usable_identifiers(RULES, (identifier,))[0])


POOL = [Identifier(t, v) for t, values in POOLS.items() for v in values if _valid(Identifier(t, v))]
STRONG = [i for i in POOL if i.type not in RULES.weak_types]

split_ops = st.tuples(
    st.just("split"), st.sampled_from(POOL), st.sets(st.sampled_from(POOL), max_size=3)
)
unban_ops = st.tuples(st.just("unban"), st.integers(0, 3), st.just(frozenset[Identifier]()))
merge_ops = st.tuples(
    st.just("merge"),
    st.sampled_from(STRONG),
    st.sets(st.sampled_from(STRONG), min_size=1, max_size=1),
)
# (position among the events, settled first?, operation): a settled operation waits until
# everything before it is processed (support looks at a quiet profile); the others arrive
# among the messages still in flight.
operations = st.lists(
    st.tuples(
        st.integers(0, 20),
        st.booleans(),
        st.one_of(split_ops, split_ops, unban_ops, merge_ops),
    ),
    min_size=1,
    max_size=4,
)
Ops = list[tuple[int, bool, tuple[str, object, object]]]


class Operator:
    """Builds the operations and keeps the oracle's record of what they asked: bans in force,
    bans lifted, and identifier pairs merged by hand."""

    def __init__(self, rules: IdentityRules) -> None:
        self.rules = rules
        self.bans: dict[str, Ban] = {}
        self.lifted: dict[str, Ban] = {}
        self.joined: list[tuple[str, str]] = []

    def profile(self, result: SimulationResult, identifier: Identifier) -> ProfileState | None:
        """The profile an operator looking now finds for `identifier` (None mid-creation)."""
        state = result.identifiers.get(self.key(identifier))
        if state is None or state.owner is None or state.owner not in result.profiles:
            return None
        return result.profile_of(self.key(identifier))

    def key(self, identifier: Identifier) -> str:
        return normalise(self.rules, identifier.type, identifier.value).key

    def operation(self, number: int, kind: str, first: object, more: object) -> Operation:
        request = f"{kind}-{number}"
        at = 30 + number

        def split(result: SimulationResult) -> list[Command]:
            assert isinstance(first, Identifier) and isinstance(more, frozenset | set)
            profile = self.profile(result, first)
            if profile is None or len(profile.identifiers) < 2:
                # Support splits what is there: some profile with something to split off.
                candidates = sorted(
                    (p for p in result.active_profiles().values() if len(p.identifiers) > 1),
                    key=lambda p: p.profile_id,
                )
                if not candidates:
                    return []
                profile = candidates[number % len(candidates)]
            wanted = {self.key(first), *(self.key(i) for i in more)}
            held = sorted(profile.identifiers)
            named = [k for k in held if k in wanted] or held[:1]
            if len(named) == len(held):
                named.pop()  # split something off rather than be refused for naming everything
            return [Split(profile.profile_id, tuple(named), "prop", request, at)]

        def unban(result: SimulationResult) -> list[Command]:
            assert isinstance(first, int)
            standing = sorted(b for b in self.bans if b not in self.lifted)
            if not standing:
                return []
            ban = self.bans[standing[first % len(standing)]]
            self.lifted[ban.ban_id] = ban
            return [
                Unban(side, ban.ban_id, "prop", request, at)
                for side in (ban.left_profile, ban.right_profile)
            ]

        def merge(result: SimulationResult) -> list[Command]:
            assert isinstance(first, Identifier) and isinstance(more, frozenset | set)
            (second,) = more
            a, b = self.profile(result, first), self.profile(result, second)
            if a is None or b is None:
                return []
            self.joined.append((self.key(first), self.key(second)))
            return [MergeByHand(a.profile_id, b.profile_id, "prop", request, at)]

        return {"split": split, "unban": unban, "merge": merge}[kind]


def check_paths(rules: IdentityRules, events: list[Event], result: SimulationResult) -> int:
    """Every explain path is valid: each hop joins two identifiers that appeared in the event
    it names, or is a merge by hand. Returns how many paths were checked."""
    keys_of = {
        e.event_id: {i.key for i in usable_identifiers(rules, e.identifiers)[0]} for e in events
    }
    checked = 0
    for profile in result.active_profiles().values():
        held = sorted(profile.identifiers)[:6]
        for start in held:
            for end in held:
                hops = path(profile, start, end) if start < end else None
                if hops is None:
                    continue
                checked += 1
                position = start
                for hop in hops:
                    a = f"{hop['from']['type']}:{hop['from']['value']}"
                    b = f"{hop['to']['type']}:{hop['to']['value']}"
                    assert a == position, f"path {start}->{end} breaks at {a}"
                    position = b
                    if hop["kind"] == "merge":
                        assert hop["merge"]["operator"] == "prop"
                    else:
                        event_keys = keys_of[hop["event"]["event_id"]]
                        assert {a, b} <= event_keys, f"{a}, {b} not both in {hop['event']}"
                assert position == end
    return checked


def run(
    rules: IdentityRules,
    events: list[Event],
    ops: Ops,
    options: dict[str, int | float],
) -> None:
    operator = Operator(rules)
    items: list[Event | Operation | None] = list(events)
    for number, (position, settled, (kind, first, more)) in enumerate(ops):
        operation = operator.operation(number, kind, first, more)
        at = min(position, len(items))
        items[at:at] = [None, operation] if settled else [operation]
    note(f"events: {[(e.event_id, [i.key for i in e.identifiers]) for e in events]}")
    note(f"operations: {ops}")
    groups: dict[int, dict[str, str]] = {}

    def strong_groups() -> dict[str, str]:
        count = len(operator.joined)
        if count not in groups:
            groups[count] = strong_components(rules, events, operator.joined)
        return groups[count]

    def after_step(_stage: object, _key: str, state: IdentifierState | ProfileState | None) -> None:
        if isinstance(state, ProfileState):
            check_limits(rules, state)
            check_no_weak_merge(rules, strong_groups(), state)
            operator.bans.update(state.bans)
            check_bans(
                rules,
                [b for b in operator.bans.values() if b.ban_id not in operator.lifted],
                state,
            )

    simulator = Simulator(
        rules,
        int(options["partitions"]),
        int(options["seed"]),
        duplicate_rate=float(options["duplicate_rate"]),
        observer=after_step,
    )
    result = None
    for phase in phases(items):
        result = simulator.run(phase, result)
    assert result is not None
    check_all(
        rules,
        events,
        result,
        split=True,
        lifted=operator.lifted.values(),
        joined=operator.joined,
    )
    paths = check_paths(rules, events, result)
    for kind in ("split", "unbanned", "merged", "merge_refused", "split_refused"):
        event(f"{kind}: {min(result.change_counts.get(kind, 0), 2)}")
    event(f"paths: {min(paths, 3)}")


@given(events=event_lists(), ops=operations, options=delivery)
def test_operations_at_random_points_keep_every_invariant_with_default_rules(
    events: list[Event],
    ops: Ops,
    options: dict[str, int | float],
) -> None:
    run(RULES, events, ops, options)


@given(events=event_lists(max_events=18), ops=operations, options=delivery)
def test_operations_at_random_points_keep_every_invariant_with_tight_limits(
    events: list[Event],
    ops: Ops,
    options: dict[str, int | float],
) -> None:
    run(TIGHT, events, ops, options)
