"""Endorsement policies: which sets of signers may vouch for a transaction.

A policy is a tree of threshold gates over principals ``'Org.role'``, written as in Fabric's
signature-policy language::

    OutOf(2, 'council.node', 'transport.node', 'health.node')
    OR('council.node', AND('transport.node', 'health.node'))
    MAJORITY('admin')          # more than half of the channel's orgs, one '<org>.admin' each
    ANY(node)                  # one node of any channel org

``AND`` is "all of", ``OR`` "one of", ``OutOf(n, ...)`` "n of"; ``MAJORITY``/``ANY`` expand over
the channel's organisations, given when the policy is parsed. Roles are those of
:class:`crypto.ca.Role`; ``peer`` is accepted as Fabric's name for ``node``.

Semantics (as Fabric's cauthdsl): an identity satisfies a principal when its org and role equal
the principal's, and one identity satisfies at most one principal, so ``AND('a.node', 'a.node')``
needs two distinct ``a`` nodes. Since an identity matches exactly one (org, role) pair, a policy is
satisfied iff some choice of leaves that makes the tree true needs, for each pair, no more leaves
than there are distinct signers with that pair. :meth:`Policy.evaluate` decides that exactly
by combining, bottom-up, the minimal demand vectors of each gate (a small dynamic programme).

The parser is a hand-written recursive descent over a bounded input; errors give the position
and what was expected. This module never touches the clock, the network or the ledger.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "MAX_POLICY_CHARS",
    "MAX_POLICY_DEPTH",
    "MAX_POLICY_PRINCIPALS",
    "ROLES",
    "Gate",
    "OrgsGate",
    "Policy",
    "PolicyError",
    "PolicyUnsatisfiable",
    "Principal",
    "Rule",
    "parse",
    "plan",
]

# Policies live in channel config and are parsed on every config change; real ones are a line.
MAX_POLICY_CHARS = 4096
# Nesting beyond a few levels is never needed to express "k of these orgs"; the bound keeps the
# recursive parser and evaluator far from Python's recursion limit.
MAX_POLICY_DEPTH = 16
# Leaves after expanding MAJORITY/ANY: a city network has tens of organisations, not hundreds.
MAX_POLICY_PRINCIPALS = 128
# Distinct demand vectors kept per gate while evaluating. The count is bounded by the product of
# (signers per (org, role) + 1), tiny in practice; the cap turns a pathological policy into an
# error instead of unbounded work.
MAX_DEMANDS = 20_000

ROLES = ("node", "admin", "client", "authority")
_ROLE_ALIASES = {"peer": "node"}
_ORG_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


class PolicyError(ValueError):
    """A policy expression is malformed, or cannot be used as asked."""


class PolicyUnsatisfiable(PolicyError):
    """No subset of the available signers satisfies the policy."""


class Signer(Protocol):
    """What a policy looks at in an identity (``crypto.msp.Identity`` fits)."""

    @property
    def org(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def id(self) -> str: ...


def _norm_role(role: str) -> str | None:
    role = _ROLE_ALIASES.get(role, role)
    return role if role in ROLES else None


@dataclass(frozen=True, slots=True)
class Principal:
    org: str
    role: str

    def __str__(self) -> str:
        return f"'{self.org}.{self.role}'"


@dataclass(frozen=True, slots=True)
class Gate:
    """``n`` of ``rules``; ``form`` ("AND", "OR" or "OutOf") only decides how it prints."""

    form: str
    n: int
    rules: tuple[Rule, ...]

    def __str__(self) -> str:
        inner = ", ".join(str(r) for r in self.rules)
        return f"OutOf({self.n}, {inner})" if self.form == "OutOf" else f"{self.form}({inner})"


@dataclass(frozen=True, slots=True)
class OrgsGate:
    """``MAJORITY(role)`` or ``ANY(role)`` over the channel's organisations."""

    form: str  # "MAJORITY" | "ANY"
    role: str

    def __str__(self) -> str:
        return f"{self.form}('{self.role}')"

    def expand(self, orgs: Sequence[str]) -> Gate:
        n = len(orgs) // 2 + 1 if self.form == "MAJORITY" else 1
        return Gate("OutOf", n, tuple(Principal(o, self.role) for o in orgs))


Rule = Principal | Gate | OrgsGate

_Demand = tuple[int, ...]  # count per (org, role) slot, in the order of Policy._slots


class Policy:
    """A parsed policy bound to a channel's organisation list (for ``MAJORITY``/``ANY``)."""

    __slots__ = ("_expanded", "_slots", "orgs_list", "root")

    def __init__(self, root: Rule, orgs: Iterable[str] = ()) -> None:
        self.root = root
        self.orgs_list: tuple[str, ...] = tuple(orgs)
        self._expanded = self._expand(root)
        leaves: dict[tuple[str, str], int] = {}
        for p in self._leaves(self._expanded):
            leaves.setdefault((p.org, p.role), len(leaves))
        self._slots = leaves
        count = sum(1 for _ in self._leaves(self._expanded))
        if count > MAX_POLICY_PRINCIPALS:
            raise PolicyError(f"policy has {count} principals after expansion, more than {MAX_POLICY_PRINCIPALS}")

    def _expand(self, rule: Rule) -> Principal | Gate:
        if isinstance(rule, OrgsGate):
            return rule.expand(self.orgs_list)
        if isinstance(rule, Gate):
            return Gate(rule.form, rule.n, tuple(self._expand(r) for r in rule.rules))
        return rule

    def _leaves(self, rule: Rule) -> Iterable[Principal]:
        if isinstance(rule, Principal):
            yield rule
        elif isinstance(rule, Gate):
            for r in rule.rules:
                yield from self._leaves(r)

    def __str__(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"Policy({str(self.root)!r}, orgs={self.orgs_list!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and (self.root, self.orgs_list) == (other.root, other.orgs_list)

    def __hash__(self) -> int:
        return hash((self.root, self.orgs_list))

    def principals(self) -> frozenset[Principal]:
        """Every (org, role) the policy can be satisfied with, ``MAJORITY``/``ANY`` expanded."""
        return frozenset(Principal(o, r) for o, r in self._slots)

    def orgs(self) -> frozenset[str]:
        """Organisations whose signers can count towards the policy."""
        return frozenset(o for o, _ in self._slots)

    # ---- evaluation -------------------------------------------------------------------------

    def _available(self, counts: Mapping[tuple[str, str], int]) -> _Demand:
        avail = [0] * len(self._slots)
        for pair, i in self._slots.items():
            avail[i] = counts.get(pair, 0)
        return tuple(avail)

    def _demands(self, rule: Principal | Gate, avail: _Demand) -> set[_Demand]:
        """Minimal demand vectors (each within ``avail``) that make ``rule`` true."""
        if isinstance(rule, Principal):
            i = self._slots[(rule.org, rule.role)]
            if avail[i] == 0:
                return set()
            d = [0] * len(avail)
            d[i] = 1
            return {tuple(d)}
        zero = tuple([0] * len(avail))
        # layer[k]: minimal demands of satisfying exactly k of the children seen so far
        layers: list[set[_Demand]] = [{zero}] + [set() for _ in range(rule.n)]
        for child in rule.rules:
            assert not isinstance(child, OrgsGate), "OrgsGate is expanded when the policy is built"
            child_demands = self._demands(child, avail)
            if not child_demands:
                continue
            for k in range(rule.n, 0, -1):
                for base in layers[k - 1]:
                    for c in child_demands:
                        s = tuple(a + b for a, b in zip(base, c, strict=True))
                        if all(x <= m for x, m in zip(s, avail, strict=True)):
                            layers[k].add(s)
                layers[k] = _minimal(layers[k])
                if len(layers[k]) > MAX_DEMANDS:
                    raise PolicyError("policy is too complex to evaluate")
        return layers[rule.n]

    def evaluate(self, identities: Iterable[Signer]) -> bool:
        """Whether these signers (deduplicated by id) satisfy the policy."""
        seen: dict[str, tuple[str, str]] = {}
        for ident in identities:
            seen.setdefault(ident.id, (ident.org, str(ident.role)))
        avail = self._available(Counter(seen.values()))
        return bool(self._demands(self._expanded, avail))

    def minimal_demands(self, counts: Mapping[tuple[str, str], int]) -> list[dict[tuple[str, str], int]]:
        """The minimal signer counts per (org, role) that satisfy the policy within ``counts``."""
        pairs = list(self._slots)
        out = []
        for d in self._demands(self._expanded, self._available(counts)):
            out.append({pairs[i]: n for i, n in enumerate(d) if n})
        return out


def _minimal(vectors: set[_Demand]) -> set[_Demand]:
    """Drop vectors that dominate another (need at least as much of everything)."""
    if len(vectors) < 2:
        return vectors
    ordered = sorted(vectors, key=sum)
    keep: list[_Demand] = []
    for v in ordered:
        if not any(all(a <= b for a, b in zip(k, v, strict=True)) for k in keep):
            keep.append(v)
    return set(keep)


# ---- parsing ------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, expected: str) -> PolicyError:
        found = repr(self.text[self.pos]) if self.pos < len(self.text) else "end of input"
        return PolicyError(f"policy error at position {self.pos}: expected {expected}, found {found}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, ch: str, what: str) -> None:
        if self.peek() != ch:
            raise self.fail(what)
        self.pos += 1

    def word(self) -> str:
        self.skip()
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isascii() and self.text[self.pos].isalnum()):
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> tuple[str, int]:
        quote = self.peek()
        if quote not in ("'", '"'):
            raise self.fail("a quoted principal such as 'org.node'")
        start = self.pos
        end = self.text.find(quote, start + 1)
        if end < 0:
            raise PolicyError(f"policy error at position {start}: unterminated quoted string")
        self.pos = end + 1
        return self.text[start + 1 : end], start

    def principal(self) -> Principal:
        body, start = self.quoted()
        org, dot, role = body.rpartition(".")
        where = f"policy error at position {start}"
        if not dot or not org:
            raise PolicyError(f"{where}: expected 'org.role', found {body!r}")
        if not set(org) <= _ORG_CHARS:
            raise PolicyError(f"{where}: organisation name {org!r} has characters other than A-Z a-z 0-9 . _ -")
        norm = _norm_role(role)
        if norm is None:
            raise PolicyError(f"{where}: unknown role {role!r} (expected one of {', '.join(ROLES)} or peer)")
        return Principal(org, norm)

    def rule(self, depth: int) -> Rule:
        if depth > MAX_POLICY_DEPTH:
            raise PolicyError(f"policy error at position {self.pos}: nested deeper than {MAX_POLICY_DEPTH}")
        if self.peek() in ("'", '"'):
            return self.principal()
        start = self.pos
        name = self.word()
        upper = name.upper()
        if upper not in ("AND", "OR", "OUTOF", "MAJORITY", "ANY"):
            self.pos = start
            raise self.fail("a principal or one of AND, OR, OutOf, MAJORITY, ANY")
        self.expect("(", f"'(' after {name}")
        if upper in ("MAJORITY", "ANY"):
            return self.orgs_gate(upper)
        n = None
        if upper == "OUTOF":
            n_pos = self.pos
            digits = self.word()
            if not digits.isdigit() or len(digits) > 4:
                self.pos = n_pos
                raise self.fail("a count (a small non-negative integer)")
            n = int(digits)
            self.expect(",", "',' after the count")
        rules = [self.rule(depth + 1)]
        while self.peek() == ",":
            self.pos += 1
            rules.append(self.rule(depth + 1))
        self.expect(")", "',' or ')'")
        if upper == "AND":
            return Gate("AND", len(rules), tuple(rules))
        if upper == "OR":
            return Gate("OR", 1, tuple(rules))
        assert n is not None
        if not 1 <= n <= len(rules):
            raise PolicyError(f"policy error at position {start}: OutOf({n}, ...) needs 1 <= {n} <= {len(rules)}")
        return Gate("OutOf", n, tuple(rules))

    def orgs_gate(self, form: str) -> OrgsGate:
        start = self.pos
        if self.peek() in ("'", '"'):
            role, _ = self.quoted()
        else:
            role = self.word()
        norm = _norm_role(role)
        if norm is None:
            self.pos = start
            raise self.fail(f"a role ({', '.join(ROLES)})")
        self.expect(")", f"')' after the role of {form}")
        return OrgsGate(form, norm)


def parse(text: str, orgs: Iterable[str] = ()) -> Policy:
    """Parse a policy expression; ``orgs`` are the channel's organisations (for MAJORITY/ANY)."""
    if not isinstance(text, str):
        raise PolicyError(f"policy must be a string, got {type(text).__name__}")
    if len(text) > MAX_POLICY_CHARS:
        raise PolicyError(f"policy of {len(text)} characters is longer than {MAX_POLICY_CHARS}")
    p = _Parser(text)
    root = p.rule(0)
    if p.peek():
        raise p.fail("end of policy")
    return Policy(root, orgs)


def plan(policy: Policy, available: Mapping[str, Sequence[str]], local_org: str | None = None) -> list[str]:
    """Pick a smallest set of node names that satisfies ``policy``.

    ``available`` maps org -> that org's reachable nodes, in order of preference. Among smallest
    sets, the one with most nodes of ``local_org`` wins (endorsing locally is cheapest), then the
    one earliest in org order; nodes are taken from the front of each list.
    Raises :class:`PolicyUnsatisfiable` when no subset of the available nodes suffices.
    """
    counts = {(org, "node"): len(nodes) for org, nodes in available.items() if nodes}
    demands = policy.minimal_demands(counts)
    if not demands:
        raise PolicyUnsatisfiable(f"no set of the available nodes satisfies {policy}")
    org_order = {org: i for i, org in enumerate(available)}

    def rank(d: dict[tuple[str, str], int]) -> tuple[int, int, list[int]]:
        local = d.get((local_org, "node"), 0) if local_org is not None else 0
        spread = sorted(org_order[o] for (o, _r), n in d.items() for _ in range(n))
        return (sum(d.values()), -local, spread)

    best = min(demands, key=rank)
    chosen: list[str] = []
    if local_org is not None and (local_org, "node") in best:
        chosen.extend(available[local_org][: best[(local_org, "node")]])
    for (org, _role), n in sorted(best.items(), key=lambda kv: org_order[kv[0][0]]):
        if org != local_org:
            chosen.extend(available[org][:n])
    return chosen
