"""Value objects without `dataclasses`: the part of @dataclass this package uses, generically.

Why not dataclasses: the resource agent is a new process for every call Pacemaker makes (a
monitor every few seconds, per resource). `import dataclasses` pulls in inspect, ast, dis and
tokenize, and every @dataclass compiles its __init__, __eq__, __repr__, ... with exec: for
the 13 value classes on the agent's path that was about 15-20 ms of a ~60 ms knfsd monitor
(measured for bench/RESULTS.md). Record does the same work at run time instead:

- the fields are the class's own annotations, in order, after those of its Record bases
  (ClassVar annotations are not fields);
- a class attribute named like a field is its default; `Factory(list)` gives each instance a
  fresh `list()`;
- `__init__` takes the fields by position or keyword, then calls `__post_init__` if the
  class has one;
- `==` compares the fields of two objects of the same class, repr() shows them;
- `class X(Record, frozen=True)`: assigning an attribute raises AttributeError and objects
  hash by their fields (`__post_init__` normalises with `object.__setattr__`, as with
  frozen dataclasses); other Records are mutable and unhashable, like `@dataclass`;
- `replace(obj, **changes)`: a new object through `__init__`, so validation runs again.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs ~3 ms to import; type checkers read this as True
if TYPE_CHECKING:
    from typing import TypeVar

    R = TypeVar("R", bound="Record")

_MISSING = object()


class Factory:
    """A default made fresh for every instance: `Factory(list)` (dataclasses' default_factory)."""

    __slots__ = ("make",)

    def __init__(self, make: object) -> None:
        self.make = make


class Record:
    """Base of ganesha-ha's value objects (see the module docstring)."""

    _fields: tuple[str, ...] = ()
    _defaults: dict[str, object] = {}
    _frozen = False

    def __init_subclass__(cls, frozen: bool = False, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        own = [name for name, kind in cls.__dict__.get("__annotations__", {}).items()
               if not str(kind).startswith(("ClassVar", "typing.ClassVar"))]
        cls._fields = tuple(dict.fromkeys(cls._fields + tuple(own)))
        cls._defaults = {**cls._defaults,
                         **{name: cls.__dict__[name] for name in own if name in cls.__dict__}}
        cls._frozen = frozen
        required = [name for name in cls._fields if name not in cls._defaults]
        if required and cls._fields.index(required[-1]) >= len(required):
            raise TypeError(f"{cls.__name__}: field {required[-1]!r} without a default follows one with a default")
        cls.__hash__ = Record._hash if frozen else None  # type: ignore[assignment]

    def __init__(self, *args: object, **kwargs: object) -> None:
        cls = type(self)
        names = cls._fields
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} arguments, {len(args)} given")
        values = dict(zip(names, args))
        for name in names[len(args):]:
            if name in kwargs:
                values[name] = kwargs.pop(name)
                continue
            default = cls._defaults.get(name, _MISSING)
            if default is _MISSING:
                raise TypeError(f"{cls.__name__}() missing argument {name!r}")
            values[name] = default.make() if isinstance(default, Factory) else default
        if kwargs:
            raise TypeError(f"{cls.__name__}() got unexpected or repeated arguments {sorted(kwargs)}")
        self.__dict__.update(values)
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def _values(self) -> tuple[object, ...]:
        return tuple(self.__dict__[name] for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def _hash(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={self.__dict__[name]!r}" for name in self._fields)
        return f"{type(self).__qualname__}({fields})"

    def __setattr__(self, name: str, value: object) -> None:
        if self._frozen:
            raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if self._frozen:
            raise AttributeError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")
        object.__delattr__(self, name)


def replace(obj: R, **changes: object) -> R:
    """A copy of `obj` with some fields changed, made through __init__ (validation runs again)."""
    values = {name: obj.__dict__[name] for name in obj._fields}
    values.update(changes)
    return type(obj)(**values)
