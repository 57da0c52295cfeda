"""record.Record: the part of @dataclass the value objects rely on, kept honest."""
import pytest

from ganesha_ha.record import Factory, Record, replace


class Point(Record, frozen=True):
    x: int
    label: str = "p"

    def __post_init__(self) -> None:
        if self.x < 0:
            raise ValueError("x must not be negative")
        object.__setattr__(self, "label", self.label.upper())


class Bag(Record):
    items: list[int] = Factory(list)
    count: int = 0


def test_init_defaults_post_init_eq_hash_repr():
    p = Point(1)
    assert p == Point(x=1, label="P") and p != Point(2) and p != (1, "P")
    assert hash(p) == hash(Point(1, "p")) and {p, Point(1)} == {p}
    assert repr(p) == "Point(x=1, label='P')"


def test_frozen_and_mutable():
    p = Point(1)
    with pytest.raises(AttributeError):
        p.x = 2
    with pytest.raises(AttributeError):
        del p.x
    a, b = Bag(), Bag()
    a.items.append(1)
    a.count = 1
    assert b.items == [] and a == Bag([1], 1)
    with pytest.raises(TypeError):
        hash(a)


def test_replace_runs_validation_again():
    assert replace(Point(1), x=2) == Point(2, "p")
    with pytest.raises(ValueError):
        replace(Point(1), x=-1)


def test_argument_errors():
    for bad in (lambda: Point(), lambda: Point(1, "a", 3), lambda: Point(1, y=2), lambda: Point(1, x=2)):
        with pytest.raises(TypeError):
            bad()
    with pytest.raises(TypeError, match="without a default follows"):
        class Bad(Record):
            a: int = 1
            b: int
