"""Endorsement policies: parsing, errors, evaluation against a brute-force reference, planning."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secprivnode.contracts.policy import (
    ROLES,
    Gate,
    OrgsGate,
    Policy,
    PolicyError,
    PolicyUnsatisfiable,
    Principal,
    Rule,
    parse,
    plan,
)

ORGS = ["council", "transport", "health"]


@dataclass(frozen=True)
class Who:
    org: str
    role: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.org}/{self.name}"


def test_parse_examples() -> None:
    p = parse("OutOf(2, 'council.node', 'transport.node', 'health.node')")
    assert p.root == Gate(
        "OutOf", 2, (Principal("council", "node"), Principal("transport", "node"), Principal("health", "node"))
    )
    q = parse("OR('council.node', AND('transport.peer', \"health.node\"))")
    assert str(q) == "OR('council.node', AND('transport.node', 'health.node'))"
    assert q.orgs() == {"council", "transport", "health"}
    assert parse("  and ( 'a.admin' ,'b.client' ) ").root == Gate(
        "AND", 2, (Principal("a", "admin"), Principal("b", "client"))
    )
    m = parse("MAJORITY(admin)", ORGS)
    assert m.root == OrgsGate("MAJORITY", "admin")
    assert m.principals() == {Principal(o, "admin") for o in ORGS}
    assert parse("ANY('peer')", ORGS).root == OrgsGate("ANY", "node")
    # org names may contain dots: the role is after the last one
    assert parse("'city.council.node'").root == Principal("city.council", "node")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "position 0: expected a principal"),
        ("AND(", "position 4: expected a principal"),
        ("AND('a.node'", "position 12: expected ',' or ')', found end of input"),
        ("AND('a.node' 'b.node')", "position 13: expected ',' or ')'"),
        ("XOR('a.node')", "position 0: expected a principal or one of AND"),
        ("'a.node' junk", "position 9: expected end of policy"),
        ("'anode'", "expected 'org.role'"),
        ("'.node'", "expected 'org.role'"),
        ("'a.king'", "unknown role 'king'"),
        ("'a b.node'", "characters other than"),
        ("'a.node", "unterminated quoted string"),
        ("OutOf(x, 'a.node')", "position 6: expected a count"),
        ("OutOf(0, 'a.node')", "needs 1 <= 0 <= 1"),
        ("OutOf(3, 'a.node', 'b.node')", "needs 1 <= 3 <= 2"),
        ("OutOf(1 'a.node')", "expected ',' after the count"),
        ("MAJORITY(king)", "expected a role"),
        ("ANY('node'", "expected ')' after the role of ANY"),
        ("AND" + "(AND" * 20 + "('a.node')" + ")" * 20, "nested deeper"),
    ],
)
def test_parse_errors_say_where_and_what(text: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse(text)
    assert fragment in str(info.value)


def test_parse_rejects_oversized_and_non_strings() -> None:
    with pytest.raises(PolicyError, match="longer than"):
        parse("OR(" + ", ".join(["'a.node'"] * 1000) + ")")
    with pytest.raises(PolicyError, match="must be a string"):
        parse(42)  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="principals after expansion"):
        parse("OR(" + ", ".join(f"'o{i}.node'" for i in range(200)) + ")")


def test_evaluate_counts_each_signer_once() -> None:
    p = parse("AND('a.node', 'a.node')")
    a1, a2 = Who("a", "node", "n1"), Who("a", "node", "n2")
    assert not p.evaluate([a1])
    assert not p.evaluate([a1, a1])  # the same signer twice is still one signer
    assert p.evaluate([a1, a2])
    # a node cannot stand in for an admin, nor another org's node
    assert not parse("'a.admin'").evaluate([a1])
    assert not parse("'b.node'").evaluate([a1])


def test_evaluate_needs_a_matching_not_a_greedy_choice() -> None:
    # Greedy left-to-right would spend the only 'a' node on the first OR and fail the second.
    p = parse("AND(OR('a.node', 'b.node'), 'a.node')")
    assert p.evaluate([Who("a", "node", "x"), Who("b", "node", "y")])
    assert not p.evaluate([Who("a", "node", "x")])


def test_majority_and_any_follow_the_channel_orgs() -> None:
    p = parse("MAJORITY(admin)", ORGS)
    c, t, h = (Who(o, "admin", "adm") for o in ORGS)
    assert not p.evaluate([c])
    assert p.evaluate([c, h])
    assert p.evaluate([c, t, h])
    five = parse("MAJORITY(admin)", [*ORGS, "water", "power"])
    assert not five.evaluate([c, h])
    assert parse("ANY(node)", ORGS).evaluate([Who("health", "node", "n")])
    assert not parse("ANY(node)", []).evaluate([Who("health", "node", "n")])


# ---- property tests against a brute-force reference ----------------------------------------

SMALL_ORGS = ["a", "b", "c"]
SMALL_ROLES = ["node", "admin"]

principals = st.builds(Principal, st.sampled_from(SMALL_ORGS), st.sampled_from(SMALL_ROLES))


def _gates(children: st.SearchStrategy[Rule]) -> st.SearchStrategy[Rule]:
    def build(form: str, rules: list[Rule], k: int) -> Rule:
        if form == "AND":
            return Gate("AND", len(rules), tuple(rules))
        if form == "OR":
            return Gate("OR", 1, tuple(rules))
        return Gate("OutOf", 1 + k % len(rules), tuple(rules))

    return st.builds(
        build,
        st.sampled_from(["AND", "OR", "OutOf"]),
        st.lists(children, min_size=1, max_size=3),
        st.integers(0, 5),
    )


orgs_gates = st.builds(OrgsGate, st.sampled_from(["MAJORITY", "ANY"]), st.sampled_from(SMALL_ROLES))
rules = st.recursive(st.one_of(principals, orgs_gates), _gates, max_leaves=6)
# An identity's id (org/name) determines its role, as certificates do: names carry the role here.
signers = st.lists(
    st.builds(
        lambda org, role, n: Who(org, role, f"{role}{n}"),
        st.sampled_from(SMALL_ORGS),
        st.sampled_from(SMALL_ROLES),
        st.integers(0, 1),
    ),
    max_size=4,
)


@given(rules)
def test_round_trip(rule: Rule) -> None:
    p = Policy(rule, SMALL_ORGS)
    assert parse(str(p), SMALL_ORGS) == p


def _leaves(rule: Principal | Gate) -> list[Principal]:
    if isinstance(rule, Principal):
        return [rule]
    return [leaf for r in rule.rules for leaf in _leaves(r)]  # type: ignore[arg-type]


def _true_under(rule: Rule, chosen: set[int], counter: list[int]) -> bool:
    """Whether the tree holds when exactly the leaves numbered in ``chosen`` are satisfied."""
    if isinstance(rule, Principal):
        i = counter[0]
        counter[0] += 1
        return i in chosen
    assert isinstance(rule, Gate)
    return sum(_true_under(r, chosen, counter) for r in rule.rules) >= rule.n


def _reference(policy: Policy, who: list[Who]) -> bool:
    """Brute force: some injective assignment of distinct signers to leaves makes the tree true."""
    expanded = policy._expanded
    leaves = _leaves(expanded)
    people = list({w.id: w for w in who}.values())
    options = [None, *range(len(leaves))]
    for assignment in itertools.product(options, repeat=len(people)):
        used = [a for a in assignment if a is not None]
        if len(used) != len(set(used)):
            continue
        if any(
            leaves[a].org != p.org or leaves[a].role != p.role
            for p, a in zip(people, assignment, strict=True)
            if a is not None
        ):
            continue
        if _true_under(expanded, set(used), [0]):
            return True
    return False


@given(rules, signers)
def test_evaluate_matches_brute_force(rule: Rule, who: list[Who]) -> None:
    p = Policy(rule, SMALL_ORGS)
    assert p.evaluate(who) == _reference(p, who)


@given(rules, st.dictionaries(st.sampled_from(SMALL_ORGS), st.integers(0, 2)))
def test_plan_is_minimal_and_satisfies(rule: Rule, sizes: dict[str, int]) -> None:
    p = Policy(rule, SMALL_ORGS)
    available = {o: [f"{o}-n{i}" for i in range(k)] for o, k in sizes.items()}
    everyone = [Who(o, "node", n) for o, names in available.items() for n in names]
    if not p.evaluate(everyone):
        with pytest.raises(PolicyUnsatisfiable):
            plan(p, available)
        return
    chosen = plan(p, available, local_org="b")
    assert len(chosen) == len(set(chosen))
    picked = [w for w in everyone if w.name in chosen]
    assert p.evaluate(picked)
    for size in range(len(chosen)):  # no smaller subset would do
        assert not any(p.evaluate(list(sub)) for sub in itertools.combinations(everyone, size))


def test_plan_prefers_the_local_org() -> None:
    p = parse("OutOf(2, 'council.node', 'transport.node', 'health.node')")
    available = {"council": ["c1", "c2"], "transport": ["t1"], "health": ["h1"]}
    assert plan(p, available, local_org="health") == ["h1", "c1"]
    assert plan(p, available, local_org="transport") == ["t1", "c1"]
    assert plan(p, available) == ["c1", "t1"]
    assert plan(parse("AND('council.node', 'council.node')"), available, "health") == ["c1", "c2"]
    with pytest.raises(PolicyUnsatisfiable):
        plan(parse("'council.admin'"), available)


def test_roles_constant_matches_certificate_roles() -> None:
    from crypto.ca import Role

    assert set(ROLES) == {r.value for r in Role}
