"""A copy of a model that shares nothing with it that can change, for ``check_causal``'s reruns (private).

The reruns (``_prefix``) call the model again on the first steps of its input. Whatever those calls change must
not reach the user's model, its inputs or its random number generators, so they call a copy (``twin``) made by
``copy.deepcopy`` and checked: everything the copy reaches (attributes, containers and what their subclasses
hold beside their items, the closures, default arguments and attributes of functions kept on it, what its
weakrefs point to) is walked, and a copy that still reaches a mutable object the model reaches (a closure over
``self``, an object whose ``__deepcopy__`` returns itself) is not used. Nor is one whose objects' classes, or the
classes it holds as values, keep state (a mutable class attribute, a mutable default argument, a decorator's
cache in a closure; a class-level table of plain values is allowed and put back), one that would cost more than
the reruns save (``COPY_BYTES``, ``COPY_OBJECTS``), or one whose making changed the model (a ``__getstate__`` that
edits ``self.__dict__``). The inputs are copied the same way for each rerun (``copied``). After the reruns,
``rng_kept`` puts back torch's, Python's and numpy's generators, those kept as globals of the modules that define
the model's classes or of the modules and functions those import, and what the classes of the model's and the
inputs' objects bind (a warn-once flag set on the class, a table's contents).
"""

import collections
import copy
import dataclasses
import enum
import functools
import logging
import random
import re
import sys
import sysconfig
import types
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

COPY_BYTES = 64 * 2**20
"""The most bytes of tensors (parameters, buffers, tensors kept as plain attributes) the reruns copy: a larger
model is not rerun (its rows run on the whole sequence). The copy shares nothing with the model, so nothing a
rerun writes (in place, through ``.data``, only on short calls) reaches it."""

COPY_OBJECTS = 20_000
"""The most other objects (attributes, list items, dict entries: a vocabulary kept on the model, about three per
word) the reruns copy and check: more would cost more than the reruns save on a check of a hundred steps (a
16,000-word lexicon made a check at 64 steps 2.6x slower, a stranger's measurement)."""

_LIBRARIES = frozenset({"builtins", "torch", "numpy", "rnnshapes", *sys.stdlib_module_names})
"""Top-level packages whose classes' attributes are not looked at for state (their own, known)."""

_LIBRARY_PATHS = tuple(
    {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    | {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    | {str(Path(__file__).parents[1])}  # rnnshapes' own (shapecheck's wrappers)
)
"""Where installed libraries' code lives: their functions' defaults and closures are theirs."""


@contextmanager
def rng_kept(device: torch.device, model: nn.Module, inputs: Any = ()) -> Iterator[None]:
    """torch's generators (the CPU's and ``device``'s), Python's and numpy's (when loaded), the generators the
    model's code keeps at module level (``_module_generators``), and what the classes of the model's and the
    inputs' objects hold (a warn-once flag set on the class, a name rebound: ``_namespaces``) put back after."""
    devices = [device] if device.type != "cpu" else []
    numpy = sys.modules.get("numpy")
    python_state = random.getstate()
    numpy_state = numpy.random.get_state() if numpy is not None else None
    kinds: dict[type, tuple[str, str]] = {
        torch.Generator: ("get_state", "set_state"),
        random.Random: ("getstate", "setstate"),
    }
    if numpy is not None:
        kinds[numpy.random.RandomState] = ("get_state", "set_state")
    kept = [
        (g, put, getattr(g, get)())
        for kind, (get, put) in kinds.items()
        for g in _module_generators(model, kind)
    ]
    bits = (
        [(g, g.bit_generator.state) for g in _module_generators(model, numpy.random.Generator)]
        if numpy
        else []
    )
    namespaces = _namespaces(model, inputs)
    try:
        with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
            yield
    finally:
        random.setstate(python_state)
        if numpy is not None:
            numpy.random.set_state(numpy_state)
        for g, put, state in kept:
            getattr(g, put)(state)
        for g, state in bits:
            g.bit_generator.state = state
        for cls, saved, tables, layers in namespaces:
            _put_back(cls, saved, tables, layers)


def _namespaces(*roots: Any) -> list[Any]:
    """The user classes (a library's excepted) of what ``roots`` reach, or that they hold as values, with what
    their namespaces bind now."""
    found: dict[type, None] = {}
    for root in roots:
        for x in _reach(root)[0].values():
            for cls in (x, type(x)) if isinstance(x, type) else (type(x),):
                for klass in cls.__mro__:
                    if not _library(klass.__module__):
                        found[klass] = None
    return [
        (cls, dict(vars(cls)), [(v, type(v)(v)) for v in vars(cls).values() if _table(v)], _layers(cls))
        for cls in found
    ]


def _layers(cls: type) -> list[tuple[types.FunctionType, list[tuple[Any, Any]], dict[str, Any]]]:
    """The functions of a class's namespace written outside the libraries (methods, properties, each layer of
    a decorator's wrapper), with what their closure cells and attributes hold now (a warn-once flag kept
    ``nonlocal``, a call count kept on the wrapper)."""
    found = []
    for value in vars(cls).values():
        for part in _parts(value):
            seen: set[int] = set()
            while isinstance(part, types.FunctionType) and id(part) not in seen:
                seen.add(id(part))
                if not _library_code(part):
                    cells = [(c, c.cell_contents) for c in part.__closure__ or () if _filled(c)]
                    found.append((part, cells, dict(vars(part))))
                part = getattr(part, "__wrapped__", None)
    return found


def _parts(value: Any) -> list[Any]:
    """What a class attribute runs or holds: a static or class method's function, a property's getter, setter
    and deleter, a cached property's function, or the value itself."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        return [value.fget, value.fset, value.fdel]
    return [value.func] if isinstance(value, functools.cached_property) else [value]


def _filled(cell: Any) -> bool:
    try:
        _ = cell.cell_contents
    except ValueError:  # an empty cell
        return False
    return True


def _table(value: Any) -> bool:
    """A class-level dict, list or set (exactly) of values that cannot change: a lookup table, sizes, an empty
    memo. The reruns may change what it holds; ``rng_kept`` puts that back."""
    if type(value) not in (dict, list, set) or len(value) > COPY_OBJECTS:  # a vocabulary: not copied, refused
        return False
    if type(value) is dict:
        return all(_immutable(k) and _immutable(v) for k, v in value.items())
    return all(_immutable(v) for v in value)


def _put_back(
    cls: type,
    saved: dict[str, Any],
    tables: list[tuple[Any, Any]],
    layers: list[tuple[types.FunctionType, list[tuple[Any, Any]], dict[str, Any]]],
) -> None:
    """Rebind what a class's namespace bound before (a flag set, a name added or removed), put back what its
    tables held, and what its functions' closure cells and attributes held."""
    for fn, cells, attributes in layers:
        for cell, held in cells:
            if cell.cell_contents is not held:
                cell.cell_contents = held
        if not _same_vars(vars(fn), attributes):
            vars(fn).clear()
            vars(fn).update(attributes)
    for table, held in tables:
        if table != held:
            if isinstance(table, list):
                table[:] = held
            else:
                table.clear()
                table.update(held)
    now = vars(cls)
    for name in [n for n in now if n not in saved]:
        try:
            delattr(cls, name)
        except (AttributeError, TypeError):
            continue
    for name, value in saved.items():
        if now.get(name, _MISSING) is not value:
            try:
                setattr(cls, name, value)
            except (AttributeError, TypeError):
                continue


_MISSING = object()


def _module_generators(model: nn.Module, kind: type) -> list[Any]:
    """The random number generators of type ``kind`` (a ``torch.Generator``, a ``random.Random``, a numpy
    ``Generator`` or ``RandomState``) kept as globals of the Python modules that define the model's classes, or
    of the modules and functions those import (a project's ``noise.py``): a model's own noise source, which a
    copy of the model shares."""
    where = [sys.modules.get(type(m).__module__) for m in model.modules()]
    for module in list(where):
        for value in vars(module).values() if module is not None else ():
            if isinstance(value, types.ModuleType):
                where.append(value)
            elif isinstance(value, types.FunctionType):
                where.append(sys.modules.get(value.__module__))
    found: dict[int, Any] = {}
    for module in where:
        if module is None or _library(module.__name__):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, kind) and value is not random._inst:  # random's own: kept above
                found[id(value)] = value
    return list(found.values())


def _library(module: str) -> bool:
    return module.partition(".")[0] in _LIBRARIES


def unsafe(model: Any) -> str | None:
    """Why reruns could reach beyond the model, or a copy would not be the model; None when neither."""
    if not isinstance(model, nn.Module):
        return "the model is not an nn.Module"
    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    if any(getattr(nn.modules.module, f"_global{name}", None) for name in hooks):
        return "global module hooks"
    for m in model.modules():
        if any(not _guards(h) for name in hooks for h in getattr(m, name, {}).values()):
            return "the model has hooks, which may record what they see"
        if isinstance(m, torch.jit.ScriptModule) or hasattr(m, "_orig_mod"):
            return "TorchScript or torch.compile"
        if hasattr(vars(m).get("forward", type(m).forward), "_torchdynamo_orig_callable"):
            return "a compiled forward"
    for cls in dict.fromkeys(type(m) for m in model.modules()):  # each class once, in order
        if (shared := _class_state(cls)) is not None:
            return shared
    return None


def _class_state(cls: type) -> str | None:
    """Where a class (a library's excepted) can keep state that every copy shares: a mutable class attribute
    (``_cache = {}``, a generator), a mutable default argument (``def forward(self, x, state={})``) or a
    closure over something mutable (a decorator's cache), in a method, a property or a decorator's wrapper."""
    if issubclass(
        cls, (enum.Enum, tuple)
    ):  # their class attributes are the enum's or named tuple's machinery
        return None
    for klass in cls.__mro__:
        if _library(klass.__module__):
            continue
        for name, value in vars(klass).items():
            if (name.startswith("__") and name.endswith("__")) or name == "_abc_impl":  # ABCMeta's own
                continue
            for part in _parts(value):
                if isinstance(part, types.FunctionType):
                    if not _pure(part):
                        return (
                            f"{klass.__name__}.{name} keeps mutable state in a default argument or a closure"
                        )
                elif part is not None and not _immutable(part) and not _table(part):
                    return f"{klass.__name__}.{name} is a mutable class attribute, which every copy shares"
    return None


def _pure(fn: types.FunctionType) -> bool:
    """Whether a function, and every wrapper layer of it written outside the libraries, holds only what cannot
    change in its defaults and closure (beartype's or jaxtyping's own wrappers are theirs)."""
    seen: set[int] = set()
    layer: Any = fn
    while isinstance(layer, types.FunctionType) and id(layer) not in seen:
        seen.add(id(layer))
        if not _library_code(layer):
            held = [*_defaults(layer), *_cells(layer), *vars(layer).values()]
            if not all(_immutable(v) or isinstance(v, types.FunctionType) for v in held):
                return False
        layer = getattr(layer, "__wrapped__", None)
    return True


def _library_code(fn: types.FunctionType) -> bool:
    """A function whose code a library wrote or generated (beartype's wrappers: ``<@beartype(...)>``)."""
    where = fn.__code__.co_filename
    return where.startswith("<@") or any(where.startswith(p) for p in _LIBRARY_PATHS)


def _guards(hook: Any) -> bool:
    """Hooks known to record nothing: rnnshapes.guard's (they check shapes), and torch's ``weight_norm`` and
    ``spectral_norm`` (they compute the weight; spectral_norm's power iteration in training mode writes into its
    buffers, which ``written`` sees)."""
    kind = type(hook)
    where = getattr(kind, "__module__", "")
    return where.startswith("rnnshapes.core._guard") or (
        where in ("torch.nn.utils.weight_norm", "torch.nn.utils.spectral_norm")
        and kind.__name__ in ("WeightNorm", "SpectralNorm")
    )


def tensor_versions(model: Any) -> list[tuple[Tensor, int, int]]:
    """The version counters and data pointers of the model's parameters and buffers: what an in-place write
    bumps, and what assigning ``.data`` changes."""
    if not isinstance(model, nn.Module):
        return []
    found = []
    for t in [*model.parameters(), *model.buffers()]:
        try:
            found.append((t, t._version, t.data_ptr()))
        except (RuntimeError, ValueError):  # inference tensors keep no version counter; lazy ones no data
            continue
    return found


def written(versions: list[tuple[Tensor, int, int]]) -> bool:
    """Whether a call since ``tensor_versions`` wrote into a parameter or buffer (in place, or assigned its
    ``.data``): the reruns' copy would not start from what the call saw. A write through ``.data`` in place bumps
    nothing; made by a rerun, it reaches only the copy."""
    return any(t._version != v or t.data_ptr() != ptr for t, v, ptr in versions)


def twin(model: nn.Module) -> tuple[nn.Module | None, str]:
    """A copy of the model that shares nothing with it that can change (see the module's docstring); else None
    and why."""
    try:
        made, _ = copied(model, {})
    except _Refused as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001  # what the walk could not read: no reruns
        return None, f"the model could not be walked ({type(e).__name__})"
    return made, ""


class _Refused(Exception):
    """Why a copy is not made or not used."""


def copied(obj: Any, memo: dict[int, Any]) -> tuple[Any, dict[int, Any]]:
    """``copy.deepcopy(obj, memo)`` checked (see the module's docstring): the copy, and what ``obj`` reaches.
    Raises ``_Refused`` with the reason, leaving ``obj`` as it was."""
    reached, size, objects = _reach(obj)
    if size > COPY_BYTES:
        raise _Refused(
            f"its tensors ({size / 2**20:.0f} MiB) are more than the reruns copy ({COPY_BYTES // 2**20} MiB)"
        )
    if objects > COPY_OBJECTS:
        raise _Refused(
            f"its attributes hold more than {COPY_OBJECTS:,} objects (a vocabulary?), more than the reruns copy"
        )
    classes = [type(x) for x in reached.values()] + [x for x in reached.values() if isinstance(x, type)]
    for cls in dict.fromkeys(classes):  # of its objects, and the classes it holds as values
        if (shared := _class_state(cls)) is not None:
            raise _Refused(shared)
    states = {  # what a __getstate__ of the user's could change (a library's is known not to)
        key: dict(vars(x)) for key, x in reached.items() if _own_getstate(type(x)) and hasattr(x, "__dict__")
    }
    for (
        key,
        x,
    ) in reached.items():  # a tensor computed by the last call (weight_norm's weight): deepcopy refuses
        if (
            isinstance(x, Tensor) and x.grad_fn is not None
        ):  # it; a detached copy stands in (a rerun reading it
            memo.setdefault(
                key, x.detach().clone().requires_grad_()
            )  # as state would not match, bit for bit)
    try:
        made = copy.deepcopy(obj, memo)
    except Exception as e:  # noqa: BLE001  # what cannot be copied: no reruns
        raise _Refused(f"the model could not be copied ({type(e).__name__})") from None
    finally:
        changed = [key for key, state in states.items() if not _same_vars(vars(reached[key]), state)]
        for key in changed:
            vars(reached[key]).clear()
            vars(reached[key]).update(states[key])
    if changed:
        raise _Refused(f"copying it changed it ({type(reached[changed[0]]).__name__}.__getstate__)")
    again, _, _ = _reach(made)
    for key, x in again.items():
        if key in reached and not _transparent(x) and not _immutable(x):
            raise _Refused(f"its copy would share {type(x).__name__} {_short(x)} with it")
    return made, reached


def _own_getstate(cls: type) -> bool:
    """Whether the class's ``__getstate__`` is defined outside the libraries (the user's own)."""
    owner = next((k for k in cls.__mro__ if "__getstate__" in vars(k)), object)
    return not _library(owner.__module__)


def _same_vars(now: dict[str, Any], before: dict[str, Any]) -> bool:
    return now.keys() == before.keys() and all(now[k] is v for k, v in before.items())


def _short(x: Any) -> str:
    text = repr(x) if not isinstance(x, nn.Module) else type(x).__name__
    return text if len(text) <= 40 else text[:37] + "..."


_ATOMIC = frozenset({str, int, float, bool, bytes, complex, type(None)})
_PLAIN = frozenset({dict, list, tuple, set, frozenset})
"""Containers with nothing beside their items (a subclass, a defaultdict, may hold a factory or attributes)."""
"""Values a deep copy returns as they are: counted, not walked (a vocabulary's words)."""


def _reach(root: Any) -> tuple[dict[int, Any], int, int]:
    """Everything ``root`` reaches that a deep copy copies or shares, ``{id: object}`` (tensors included, plain
    strings and numbers left out), the bytes of its tensors' storages, and the number of other objects (plain
    values included). The walk stops past ``COPY_OBJECTS`` objects."""
    reached: dict[int, Any] = {}
    storages: dict[int, tuple[int, int]] = {}
    stack: list[Any] = [root]
    objects = 0
    while stack and objects <= COPY_OBJECTS:
        x = stack.pop()
        if id(x) in reached:
            continue
        reached[id(x)] = x
        if isinstance(x, Tensor):
            storages[id(x)] = _bytes(x)
            continue
        objects += 1
        if isinstance(x, (type, types.ModuleType)) or _immutable(x):
            continue
        items: Any = ()
        if isinstance(x, types.FunctionType):
            items = [*_defaults(x), *_cells(x), *vars(x).values()]
        elif isinstance(x, types.MethodType):
            items = [x.__self__, x.__func__]
        elif isinstance(x, weakref.ref):
            items = [x()]
        elif isinstance(x, Mapping):
            objects += 2 * len(x)
            items = [*x.keys(), *x.values()] if objects <= COPY_OBJECTS else []
        elif isinstance(x, (list, tuple, set, frozenset, collections.deque)):
            objects += len(x)
            items = list(x) if objects <= COPY_OBJECTS else []
        if not isinstance(x, (types.FunctionType, types.MethodType, weakref.ref)) and type(x) not in _PLAIN:
            items = [*items, *_held(x)]
        stack.extend(v for v in items if type(v) not in _ATOMIC)
    shared: dict[int, int] = {}  # storages counted once
    for key, (ptr, size) in storages.items():
        shared[ptr if ptr else key] = size
    return reached, sum(shared.values()), objects


def _held(x: Any) -> list[Any]:
    """What an object holds beside its items: its ``__dict__``, its slots, a defaultdict's factory; read without
    running its own ``__getattr__`` (a config dict whose attributes are its keys)."""
    found = []
    try:
        found += list(object.__getattribute__(x, "__dict__").values())
    except (AttributeError, TypeError):
        pass
    if isinstance(x, collections.defaultdict):
        found.append(x.default_factory)
    for klass in type(x).__mro__:
        for name in _slots(klass):
            slot = vars(klass).get(name)
            try:
                found.append(slot.__get__(x, type(x)))  # type: ignore[union-attr]
            except (AttributeError, TypeError):
                continue
    return found


def _bytes(t: Tensor) -> tuple[int, int]:
    """The data pointer and size of a tensor's storage (its own size where it has none to read)."""
    try:
        storage = t.untyped_storage()
        return storage.data_ptr(), storage.nbytes()
    except Exception:  # noqa: BLE001  # sparse, wrapper subclasses, lazy parameters
        try:
            return 0, t.numel() * t.element_size()
        except Exception:  # noqa: BLE001
            return 0, 0


def _slots(cls: type) -> tuple[str, ...]:
    slots = vars(cls).get("__slots__", ())
    return (
        (slots,)
        if isinstance(slots, str)
        else tuple(s for s in slots if s not in ("__dict__", "__weakref__"))
    )


def _defaults(fn: types.FunctionType) -> list[Any]:
    return [*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values()]


def _cells(fn: types.FunctionType) -> list[Any]:
    found = []
    for cell in fn.__closure__ or ():
        try:
            found.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    return found


def _transparent(x: Any) -> bool:
    """Shared by a deep copy by design, and looked through by ``_reach``: what they hold decides."""
    return isinstance(
        x, (type, types.ModuleType, types.FunctionType, types.MethodType, weakref.ref, tuple, frozenset)
    )


def _immutable(x: Any) -> bool:
    """What a copy may share: values that cannot change (a closure or a weakref can reach the model)."""
    if x is None or isinstance(x, (bool, int, float, complex, str, bytes, type, enum.Enum, types.ModuleType)):
        return True
    if isinstance(x, (torch.dtype, torch.device, torch.layout, torch.memory_format, torch.Size, re.Pattern)):
        return True
    if isinstance(x, (logging.Logger, logging.LoggerAdapter)):  # shared by design; what it logs is outside
        return True
    numpy = sys.modules.get("numpy")
    scalars = (numpy.number, numpy.bool_, numpy.str_, numpy.bytes_, numpy.datetime64) if numpy else ()
    if scalars and isinstance(x, scalars):  # numpy's scalars (np.void excepted: it can be written)
        return True
    if isinstance(x, types.FunctionType):
        return x.__closure__ is None and all(_immutable(d) for d in _defaults(x))
    if isinstance(
        x,
        (
            types.BuiltinFunctionType,
            types.MethodWrapperType,
            types.WrapperDescriptorType,
            types.MethodDescriptorType,
            types.ClassMethodDescriptorType,
            types.GetSetDescriptorType,
            types.MemberDescriptorType,
        ),
    ):
        return True
    if isinstance(x, (tuple, frozenset)):
        return all(_immutable(v) for v in x)
    if isinstance(x, functools.partial):
        return _immutable(x.func) and _immutable(x.args) and all(_immutable(v) for v in x.keywords.values())
    params = getattr(type(x), "__dataclass_params__", None)
    if params is not None and params.frozen and not isinstance(x, type):
        return all(_immutable(getattr(x, f.name, None)) for f in dataclasses.fields(x))
    return False
