"""plan.py: the steps of a change on the live server, and the steps back (pure)."""
from __future__ import annotations

from hypothesis import given, strategies as st

from ganesha_ha.model import Export, KnfsdOptions
from ganesha_ha.plan import APPLY, WITHDRAW, Step, batches, plan_changes, plan_undo


def exp(path: str, export_id: int = 1, pseudo: str | None = None, clients=("*",)) -> Export:
    return Export(path=path, export_id=export_id, knfsd=KnfsdOptions("7"), pseudo=pseudo or f"/{path}", clients=clients)


exports = st.builds(exp, st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 4),
                    st.sampled_from([None, "/p", "/q"]), st.sampled_from([("*",), ("127.0.0.1",)]))
registries = st.lists(exports, max_size=4, unique_by=lambda e: e.path)


def serve(live: dict[str, Export], steps: list[Step]) -> dict[str, Export]:
    """A server keyed by path: what it serves after the steps."""
    out = dict(live)
    for step in steps:
        if step.action == APPLY:
            out[step.export.path] = step.export
        elif out.get(step.export.path) == step.export:
            del out[step.export.path]
    return out


@given(registries, registries, st.sets(st.sampled_from(["a", "b", "c", "d"])))
def test_the_steps_take_the_server_from_before_to_after_and_back(before, after, reapply):
    steps = plan_changes(before, after, reapply)
    start = {e.path: e for e in before}
    assert serve(start, steps) == {e.path: e for e in after}
    kinds = [s.action for s in steps]
    assert kinds == sorted(kinds, key=lambda k: k != WITHDRAW), "withdrawals first"
    # nothing is done to an export that does not change, unless asked to
    untouched = {e.path for e in before if e in after and e.path not in reapply}
    assert not untouched & {s.export.path for s in steps}
    # a failure after any number of steps: the way back restores what is not re-applied
    for done in range(len(steps) + 1):
        back = serve(serve(start, steps[:done]), plan_undo(before, after, reapply))
        assert {p: e for p, e in back.items() if p not in reapply} == \
               {p: e for p, e in start.items() if p not in reapply}


def test_identity_changes_withdraw_first_and_the_rest_update_in_place():
    old = exp("a", 1)
    assert plan_changes([old], [exp("a", 1, clients=("127.0.0.1",))]) == [
        Step(APPLY, exp("a", 1, clients=("127.0.0.1",)))]
    assert plan_changes([old], [exp("a", 2)]) == [Step(WITHDRAW, old), Step(APPLY, exp("a", 2))]
    assert plan_changes([old], [exp("a", 1, pseudo="/p")]) == [Step(WITHDRAW, old), Step(APPLY, exp("a", 1, pseudo="/p"))]
    assert plan_changes([old], [old]) == [] and plan_changes([old], [old], {"a"}) == [Step(APPLY, old)]
    assert plan_undo([], [old], {"a"}) == [], "a re-applied export's earlier state is unknown: no undo"


def test_order_and_batches():
    e1, e2, e3 = exp("c", 1), exp("a", 2), exp("b", 3)
    steps = plan_changes([e2], [e3, e1])
    assert steps == [Step(WITHDRAW, e2), Step(APPLY, e1), Step(APPLY, e3)]
    assert batches(steps) == [(WITHDRAW, [e2]), (APPLY, [e1, e3])]
    assert batches([]) == []
