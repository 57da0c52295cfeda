"""plan.py: the steps of a change on the live server, and the steps back (pure).

The steps are run against `PseudoTreeServer`, a model of how Ganesha 4.3 mounts exports in
its NFSv4 pseudo tree (measured: docs/research/ganesha-facts.md section E, and
tests/server/test_pseudo_tree.py against the real ganesha.nfsd): an export is mounted under
the live export whose pseudo path is the longest prefix of its own; removing an export with
exports mounted under it is refused ("Cannot remove export with submounts"); an export mounted
over a live one below it hides that one. A plan is right when, from any server state it may
start in, no step is refused and the server ends serving exactly the registry, every export
visible at its own pseudo path.
"""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from ganesha_ha.model import Export, KnfsdOptions
from ganesha_ha.plan import (APPLY, WITHDRAW, Step, apply_order, batches, plan_changes, plan_undo,
                             pseudo_under, withdraw_order)


def exp(path: str, export_id: int = 1, pseudo: str | None = None, clients=("*",)) -> Export:
    return Export(path=path, export_id=export_id, knfsd=KnfsdOptions("7"), pseudo=pseudo or f"/{path}", clients=clients)


class Refused(Exception):
    pass


class PseudoTreeServer:
    """Live exports by Export_Id, each with the Export_Id it is mounted under (None: in the
    server's own pseudo directories). `apply` updates a live id in place (same path: Ganesha's
    UpdateExport, which cannot change the pseudo path) or mounts it; `withdraw` of what is not
    live is nothing; of an export with submounts, refused."""

    def __init__(self) -> None:
        self.live: dict[int, tuple[Export, int | None]] = {}

    def _parent(self, pseudo: str) -> int | None:
        above = [(len(e.pseudo), i) for i, (e, _) in self.live.items() if pseudo_under(pseudo, e.pseudo)]
        return max(above)[1] if above else None

    def apply(self, e: Export) -> None:
        got = self.live.get(e.export_id)
        if got is not None:
            if got[0].path != e.path:
                raise Refused(f"Export_Id {e.export_id} is live for {got[0].path}")
            if got[0].pseudo != e.pseudo:
                raise Refused("UpdateExport cannot change the pseudo path")
            self.live[e.export_id] = (e, got[1])
            return
        if any(x.pseudo == e.pseudo for x, _ in self.live.values()):
            raise Refused(f"pseudo path {e.pseudo} is in use")
        self.live[e.export_id] = (e, self._parent(e.pseudo))

    def withdraw(self, e: Export) -> None:
        got = self.live.get(e.export_id)
        if got is None or got[0].path != e.path:
            return
        if any(parent == e.export_id for _, parent in self.live.values()):
            raise Refused("Cannot remove export with submounts")
        del self.live[e.export_id]

    def run(self, steps: list[Step]) -> None:
        for step in steps:
            (self.apply if step.action == APPLY else self.withdraw)(step.export)

    def served(self) -> dict[str, Export]:
        return {e.path: e for e, _ in self.live.values()}

    def hidden(self) -> list[str]:
        """Live exports a client cannot reach at their pseudo path: mounted under something
        else than the export now above them (a parent mounted after them)."""
        return [e.pseudo for i, (e, parent) in self.live.items()
                if parent != self._parent(e.pseudo)]

    @classmethod
    def serving(cls, exports) -> "PseudoTreeServer":
        """A server that went live with `exports` in the right order (what a correct start leaves)."""
        server = cls()
        for e in apply_order(exports):
            server.apply(e)
        return server


# ---- random pseudo trees ------------------------------------------------------------------------
# Few names, short paths: most pseudo paths nest in another. Each directory has two possible
# Export_Ids of its own (so an update may change the id, and ids never collide across paths).
PATHS = ["a", "b", "c", "d", "e"]
PSEUDOS = ["/t", "/t/s", "/t/s/u", "/t/v", "/w", "/w/t", "/tt", "/t/s/u/x"]
ID_OF = {p: (10 + i, 50 - i) for i, p in enumerate(PATHS)}


@st.composite
def registries(draw, min_size=0):
    paths = draw(st.lists(st.sampled_from(PATHS), unique=True, min_size=min_size, max_size=len(PATHS)))
    pseudos = draw(st.lists(st.sampled_from(PSEUDOS), unique=True, min_size=len(paths), max_size=len(paths)))
    return [exp(p, ID_OF[p][draw(st.integers(0, 1))], q, draw(st.sampled_from([("*",), ("127.0.0.1",)])))
            for p, q in zip(paths, pseudos)]


def assert_in_tree_order(steps: list[Step]) -> None:
    kinds = [s.action for s in steps]
    assert kinds == sorted(kinds, key=lambda k: k != WITHDRAW), "withdrawals first"
    for i, a in enumerate(steps):
        for b in steps[i + 1:]:
            if a.action == b.action == APPLY:
                assert not pseudo_under(a.export.pseudo, b.export.pseudo), "parent applied before child"
            if a.action == b.action == WITHDRAW:
                assert not pseudo_under(b.export.pseudo, a.export.pseudo), "child withdrawn before parent"


@settings(max_examples=400)
@given(registries(), registries(), st.sets(st.sampled_from(PATHS)), st.sets(st.sampled_from(PATHS)))
def test_the_steps_take_a_pseudo_tree_server_from_before_to_after_and_back(before, after, reapply, absent):
    absent = {p for p in absent & reapply if p in {e.path for e in before}}
    server = PseudoTreeServer.serving([e for e in before if e.path not in absent])
    start = dict(server.live)
    steps = plan_changes(before, after, reapply, absent)
    assert_in_tree_order(steps)
    server.run(steps)
    assert server.served() == {e.path: e for e in after} and server.hidden() == []
    # nothing is done to an export that does not change, unless asked to or below a change
    moved = [e.pseudo for e in before + after if e not in before or e not in after or e.path in absent]
    untouched = {e.path for e in before if e in after and e.path not in reapply
                 and not any(pseudo_under(e.pseudo, m) for m in moved)}
    assert not untouched & {s.export.path for s in steps}
    # a failure after any number of steps, the batch that failed carried out in part: the
    # way back restores the registry as it was (exports re-applied without change stay as
    # they are)
    same = {e.path for e in before if e in after and e.path in reapply}
    ends = [0] + [sum(len(b[1]) for b in batches(steps)[:i + 1]) for i in range(len(batches(steps)))]
    for done in ends:
        nxt = next((n for n in ends if n > done), done)
        for carried in range(done, nxt + 1):
            server = PseudoTreeServer()
            server.live = dict(start)
            server.run(steps[:carried])
            server.run(plan_undo(before, after, reapply, absent, done=done))
            assert {p: e for p, e in server.served().items() if p not in same} == \
                   {e.path: e for e in before if e.path not in same | absent}
            assert server.hidden() == []


@given(st.permutations(range(1, 7)), st.randoms())
def test_any_export_id_order_parents_apply_first_and_withdraw_last(ids, rnd):
    """A random pseudo tree with its Export_Ids in any order: every parent is applied before
    its children and withdrawn after them (start and stop of a volume)."""
    pseudos = ["/p"]
    for _ in range(5):
        pseudos.append(rnd.choice(pseudos) + "/" + rnd.choice("xyz") + str(len(pseudos)))
    tree = [exp(f"d{i}", export_id, q) for i, (export_id, q) in enumerate(zip(ids, pseudos))]
    start = plan_changes([], tree, {e.path for e in tree})
    stop = plan_changes(tree, [])
    assert [s.action for s in start] == [APPLY] * 6 and [s.action for s in stop] == [WITHDRAW] * 6
    assert_in_tree_order(start)
    assert_in_tree_order(stop)
    server = PseudoTreeServer()
    server.run(start)
    assert server.hidden() == [] and len(server.live) == 6
    server.run(stop)
    assert server.live == {}


def test_identity_changes_withdraw_first_and_the_rest_update_in_place():
    old = exp("a", 1)
    assert plan_changes([old], [exp("a", 1, clients=("127.0.0.1",))]) == [
        Step(APPLY, exp("a", 1, clients=("127.0.0.1",)))]
    assert plan_changes([old], [exp("a", 2)]) == [Step(WITHDRAW, old), Step(APPLY, exp("a", 2))]
    assert plan_changes([old], [exp("a", 1, pseudo="/p")]) == [Step(WITHDRAW, old), Step(APPLY, exp("a", 1, pseudo="/p"))]
    assert plan_changes([old], [old]) == [] and plan_changes([old], [old], {"a"}) == [Step(APPLY, old)]
    assert plan_undo([old], [old], {"a"}, done=1) == [], "a re-applied export's earlier state is unknown: no undo"
    assert plan_undo([old], [old], {"a"}, done=0) == [Step(APPLY, old)], "...unless it may be half-applied"
    assert plan_undo([], [old], {"a"}, done=1) == [Step(WITHDRAW, old)], "one the change added goes"


def test_order_and_batches():
    e1, e2, e3 = exp("c", 1), exp("a", 2), exp("b", 3)
    steps = plan_changes([e2], [e3, e1])
    assert steps == [Step(WITHDRAW, e2), Step(APPLY, e1), Step(APPLY, e3)]
    assert batches(steps) == [(WITHDRAW, [e2]), (APPLY, [e1, e3])]
    assert batches([]) == []


# ---- the cases of issue 13, item 3, one by one ------------------------------------------------------

TOP, SUB = exp("b", 2, "/top"), exp("c", 1, "/top/sub")   # the child at the lower Export_Id


def test_nested_exports_start_and_stop_in_tree_order_whatever_their_ids():
    assert plan_changes([], [TOP, SUB], {"b", "c"}) == [Step(APPLY, TOP), Step(APPLY, SUB)]
    assert plan_changes([TOP, SUB], []) == [Step(WITHDRAW, SUB), Step(WITHDRAW, TOP)]
    assert apply_order([SUB, TOP]) == [TOP, SUB] and withdraw_order([TOP, SUB]) == [SUB, TOP]


def test_removing_a_parent_remounts_its_children():
    """Ganesha cannot remove an export with submounts: the child goes first and comes back
    (same identity) in Ganesha's own pseudo directories."""
    assert plan_changes([TOP, SUB], [SUB]) == [Step(WITHDRAW, SUB), Step(WITHDRAW, TOP), Step(APPLY, SUB)]
    assert plan_changes([TOP, SUB], [SUB], submounts=False) == [Step(WITHDRAW, TOP)], \
        "a server without a pseudo tree of mounts (knfsd) leaves the child alone"


def test_a_new_parent_over_a_live_child_remounts_the_child():
    assert plan_changes([SUB], [TOP, SUB]) == [Step(WITHDRAW, SUB), Step(APPLY, TOP), Step(APPLY, SUB)]
    # a repair that re-applies a parent found missing, below which the child is live
    assert plan_changes([TOP, SUB], [TOP, SUB], {"b"}, absent={"b"}) == [
        Step(WITHDRAW, SUB), Step(APPLY, TOP), Step(APPLY, SUB)]
    # ...but a re-apply of a live parent is an update in place: the child stays
    assert plan_changes([TOP, SUB], [TOP, SUB], {"b"}) == [Step(APPLY, TOP)]


def test_moving_an_export_under_or_out_from_another():
    other = exp("d", 3, "/other")
    moved_in = other.with_changes(pseudo="/top/other")
    assert plan_changes([TOP, other], [TOP, moved_in]) == [Step(WITHDRAW, other), Step(APPLY, moved_in)]
    moved_out = SUB.with_changes(pseudo="/sub")
    assert plan_changes([TOP, SUB], [TOP, moved_out]) == [Step(WITHDRAW, SUB), Step(APPLY, moved_out)]
    # the parent moves away: its child is remounted where it was, without the parent
    top2 = TOP.with_changes(pseudo="/elsewhere")
    assert plan_changes([TOP, SUB], [top2, SUB]) == [
        Step(WITHDRAW, SUB), Step(WITHDRAW, TOP), Step(APPLY, top2), Step(APPLY, SUB)]


def test_undo_of_a_failed_parent_removal_puts_the_child_back():
    steps = plan_changes([TOP, SUB], [SUB])
    server = PseudoTreeServer.serving([TOP, SUB])
    server.run(steps[:1])                       # the child withdrawn, then the parent's removal fails
    server.run(plan_undo([TOP, SUB], [SUB], done=1))
    assert server.served() == {"b": TOP, "c": SUB} and server.hidden() == []
