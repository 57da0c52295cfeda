"""pseudo_collisions (neighbours.py, pure apart from the marks it is given): looked up along
each pseudo path, it names exactly the exports of ours that are, lie below or lie above one of
theirs, as comparing every pair would (a property test against that definition), without
comparing the pairs."""
import pytest
from hypothesis import given, strategies as st

from ganesha_ha.errors import PseudoCollisionError
from ganesha_ha.model import Export, KnfsdOptions
from ganesha_ha.neighbours import pseudo_collisions
from ganesha_ha.plan import pseudo_clash
from ganesha_ha.registry import SCHEMA_VERSION

PSEUDO = st.lists(st.sampled_from(["a", "b", "ab", "c"]), min_size=1, max_size=3).map(lambda p: "/" + "/".join(p))


class Marks:
    """The node's active marks of one other volume (what NodeState.others_active returns)."""

    def __init__(self, exports):
        self.records = [{"mountpoint": "/srv/other", "version": SCHEMA_VERSION,
                         "exports": [e.to_dict() for e in exports]}]

    def others_active(self):
        return self.records


def exports(pseudos, first_id):
    return [Export(path=f"d{i}", export_id=first_id + i, knfsd=KnfsdOptions(str(first_id + i)), pseudo=p,
                   clients=("127.0.0.1(rw)",)) for i, p in enumerate(dict.fromkeys(pseudos))]


@given(st.lists(PSEUDO, min_size=1, max_size=6), st.lists(PSEUDO, min_size=1, max_size=6))
def test_found_exactly_when_a_pair_meets(ours_p, theirs_p):
    ours, theirs = exports(ours_p, 100), exports(theirs_p, 200)
    meets = any(pseudo_clash(o.pseudo, t.pseudo) for o in ours for t in theirs)
    served = {t.export_id for t in theirs}
    hits = pseudo_collisions(Marks(theirs), lambda: served, ours, lambda e: e.path)
    assert bool(hits) == meets and all(isinstance(err, PseudoCollisionError) for _, err in hits)
    assert pseudo_collisions(Marks(theirs), lambda: set(), ours, lambda e: e.path) == []  # none of theirs served


def test_ours_are_looked_up_not_compared_with_each_of_theirs(monkeypatch):
    """Two volumes of 10 000 exports: no pair is compared (it was 10^8 comparisons, minutes)."""
    import ganesha_ha.neighbours as neighbours

    compared = []
    monkeypatch.setattr(neighbours, "pseudo_clash", lambda a, b: compared.append((a, b)) or pseudo_clash(a, b))
    ours = exports([f"/vol1/d{i}" for i in range(10_000)], 1)
    theirs = exports([f"/vol2/d{i}" for i in range(10_000)], 20_000)
    served = {t.export_id for t in theirs}
    assert pseudo_collisions(Marks(theirs), lambda: served, ours, lambda e: e.path) == []
    assert compared == []
    [(_, err)] = pseudo_collisions(Marks(theirs), lambda: served, [*ours, *exports(["/vol2/d7"], 40_000)],
                                   lambda e: e.path)
    assert "/vol2/d7 of d0 is already served" in str(err)
    assert len(compared) == 1


def test_a_new_export_s_junctions_are_looked_for_below_it_only(monkeypatch):
    """Volume.require_junctions looks for the parent of each export below the new one only:
    it was each export's parent, a pass over all of them each (10^8 steps at 10 000 exports,
    the `export add` of the 10 000th took 20 s)."""
    from types import SimpleNamespace

    from ganesha_ha import plan
    from ganesha_ha.volume import Volume

    asked = []
    real = plan.pseudo_parent
    monkeypatch.setattr(plan, "pseudo_parent", lambda pseudo, exps: asked.append(pseudo) or real(pseudo, exps))
    many = exports([f"/vol1/d{i}" for i in range(2000)], 1)
    Volume.__new__(Volume).require_junctions(SimpleNamespace(server="ganesha", exports=many), many[-1])
    assert asked == [many[-1].pseudo]   # its own parent; nothing lies below it


@given(st.lists(PSEUDO, min_size=1, max_size=6), st.lists(PSEUDO, min_size=0, max_size=6))
def test_each_export_that_meets_one_of_theirs_is_named_and_no_other(ours_p, theirs_p):
    """find_pseudo_collisions (pure) lists exactly the exports of ours that meet one of theirs,
    in our order, each once: a start leaves out these and serves the others."""
    from ganesha_ha.neighbours import find_pseudo_collisions

    ours, theirs = exports(ours_p, 100), exports(theirs_p, 200)
    hits = find_pseudo_collisions([("/srv/other", t) for t in theirs], ours, lambda e: e.path)
    assert [o for o, _ in hits] == [o for o in ours if any(pseudo_clash(o.pseudo, t.pseudo) for t in theirs)]
    for o, text in hits:
        assert text.startswith(f"pseudo path {o.pseudo} of {o.path} ") and "/srv/other" in text


@pytest.mark.parametrize("theirs_p, ours, named", [
    (["/top/sub", "/top"], "/top", "is already served"),            # the equal path, not one below it
    (["/a", "/a/b"], "/a/b/c", "lies below /a/b,"),                 # the nearest above it
    (["/a/b/c"], "/a", "lies above /a/b/c,")])
def test_the_closest_of_theirs_is_named(theirs_p, ours, named):
    from ganesha_ha.neighbours import find_pseudo_collisions

    theirs = exports(theirs_p, 200)
    [(_, text)] = find_pseudo_collisions([("/srv/other", t) for t in theirs], exports([ours], 100), str)
    assert named in text
