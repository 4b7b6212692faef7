"""Pure restore planning: what to write, in which order, with which field values.

Contracts (no I/O here; services feed in describes and backed-up records):

- **Order.** :func:`plan_order` sorts objects parents-before-children using the TARGET describe's
  ``referenceTo`` of createable reference fields. A reference to the object itself (``ParentId`` on
  Account) and any reference that closes a cycle is *deferred*: inserted as null in pass 1 and set by
  an update in pass 2, once every record of the job has its new id.
- **Fields.** Only fields the TARGET describe marks ``createable`` (inserts) or ``updateable`` (updates)
  are ever sent; ``Id``, calculated and system fields never are. :func:`missing_fields` lists backed-up
  fields the target lacks (a cross-org restore refuses unless told to skip them).
- **Lookups.** A reference value is remapped through the job's old-id -> new-id map. Polymorphic lookups
  (``WhoId``, ``WhatId``, ``OwnerId``, ``ParentId`` on Attachment, ``LinkedEntityId``) are resolved by
  the id's 3-character key prefix. A reference to a record that is not part of the job is kept as is
  when the caller says it exists in the target, else nulled and reported (``unresolved``).
- **Revert.** :func:`revert_changes` returns only the updateable fields whose backed-up value differs
  from the current one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orgvault.ports import FieldInfo, ObjectSchema

# Fields that are never written, whatever a describe says (system-maintained).
SYSTEM_FIELDS = frozenset(
    {
        "id",
        "isdeleted",
        "createddate",
        "createdbyid",
        "lastmodifieddate",
        "lastmodifiedbyid",
        "systemmodstamp",
        "lastactivitydate",
        "lastvieweddate",
        "lastreferenceddate",
        "masterrecordid",
    }
)

# Field types whose values are not scalar data to send (files go through the file path).
_NON_SCALAR_TYPES = frozenset({"address", "location", "base64"})


class RestoreMode(StrEnum):
    REVERT_FIELDS = "revert-fields"  # PATCH changed, updateable fields on existing records
    RECREATE_DELETED = "recreate-deleted"  # insert records that no longer exist
    UPSERT = "upsert"  # upsert by an external id field


class Operation(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    UPSERT = "upsert"
    RELINK = "relink"  # pass 2: set deferred references on records inserted in pass 1


@dataclass(frozen=True)
class OrderPlan:
    """Objects in write order and, per object, the reference fields deferred to pass 2."""

    order: tuple[str, ...]
    deferred: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def deferred_fields(self, object_name: str) -> tuple[str, ...]:
        return self.deferred.get(object_name, ())


def _reference_edges(schema: ObjectSchema, objects: set[str]) -> list[tuple[str, str]]:
    """(field, parent_object) for createable reference fields pointing into ``objects``."""
    edges = []
    for f in schema.fields:
        if f.type != "reference" or not f.createable or f.name.lower() in SYSTEM_FIELDS:
            continue
        for parent in f.reference_to:
            if parent in objects:
                edges.append((f.name, parent))
    return edges


def plan_order(schemas: Mapping[str, ObjectSchema], objects: Iterable[str]) -> OrderPlan:
    """Parents before children (Kahn's algorithm, ties broken by name for a stable plan).

    Self references are always deferred. When the remaining graph has a cycle, the nillable
    reference fields of the objects in the cycle are deferred (a non-nillable one only if no
    nillable one breaks it) until the graph is acyclic."""
    wanted = [o for o in dict.fromkeys(objects)]
    names = set(wanted)
    deferred: dict[str, set[str]] = {o: set() for o in wanted}
    # parents[child] = {parent: {fields}}
    parents: dict[str, dict[str, set[str]]] = {o: {} for o in wanted}
    for obj in wanted:
        schema = schemas.get(obj)
        if schema is None:
            continue
        for fname, parent in _reference_edges(schema, names):
            if parent == obj:
                deferred[obj].add(fname)
            else:
                parents[obj].setdefault(parent, set()).add(fname)

    order: list[str] = []
    remaining = set(wanted)
    while remaining:
        ready = sorted(o for o in remaining if not (set(parents[o]) & remaining))
        if ready:
            order.extend(ready)
            remaining -= set(ready)
            continue
        # A cycle: defer the cheapest edge set (prefer nillable fields) of one object in it.
        best: tuple[int, str, str] | None = None
        for o in sorted(remaining):
            for parent, fnames in parents[o].items():
                if parent not in remaining:
                    continue
                schema = schemas[o]
                required = sum(
                    1 for n in fnames if not (schema.field(n) or FieldInfo(n, "reference")).nillable
                )
                cand = (required, o, parent)
                if best is None or cand < best:
                    best = cand
        assert best is not None  # remaining non-empty and nothing ready implies an edge exists
        _, o, parent = best
        deferred[o] |= parents[o].pop(parent)
    return OrderPlan(
        order=tuple(order),
        deferred={o: tuple(sorted(fs)) for o, fs in deferred.items() if fs},
    )


def is_writable(f: FieldInfo, operation: Operation) -> bool:
    """Whether ``f`` may be sent for ``operation`` per the TARGET describe."""
    if f.name.lower() in SYSTEM_FIELDS or f.calculated or f.type in _NON_SCALAR_TYPES or f.type == "id":
        return False
    if operation is Operation.INSERT:
        return f.createable
    if operation in (Operation.UPDATE, Operation.RELINK):
        return f.updateable
    return f.createable or f.updateable  # upsert: creates or updates


_WRITABLE: dict[tuple[int, Operation], tuple[ObjectSchema, dict[str, FieldInfo]]] = {}


def writable_fields(target: ObjectSchema, operation: Operation) -> dict[str, FieldInfo]:
    """Lower-cased name -> field, for fields the target accepts for ``operation`` (memoized per
    schema object: restores call this once per record)."""
    hit = _WRITABLE.get((id(target), operation))
    if hit is not None and hit[0] is target:
        return hit[1]
    out = {f.name.lower(): f for f in target.fields if is_writable(f, operation)}
    if len(_WRITABLE) > 4096:
        _WRITABLE.clear()
    _WRITABLE[(id(target), operation)] = (target, out)
    return out


def missing_fields(record_fields: Iterable[str], target: ObjectSchema | None) -> list[str]:
    """Backed-up fields the target object does not have at all (sorted). All fields when the
    target lacks the object. System fields are ignored."""
    names = [n for n in record_fields if n.lower() not in SYSTEM_FIELDS and not n.startswith("$")]
    if target is None:
        return sorted(names)
    return sorted(n for n in names if target.field(n) is None)


def object_for_id(record_id: str, key_prefixes: Mapping[str, str]) -> str | None:
    """The object an id belongs to, by its 3-character key prefix (``001`` -> Account)."""
    if not isinstance(record_id, str) or len(record_id) < 3:
        return None
    return key_prefixes.get(record_id[:3])


def same_id(a: str | None, b: str | None) -> bool:
    """Equality of Salesforce ids, 15 or 18 characters (the 15-character prefix is the id)."""
    if not a or not b:
        return False
    return a[:15] == b[:15]


class IdMap:
    """Old id -> new id for one restore job (15-character keys: both id forms resolve).

    Mutable by design: it grows as batches complete; the restore job persists it."""

    def __init__(self, pairs: Mapping[str, str] | None = None) -> None:
        self._map: dict[str, str] = {}
        for old, new in (pairs or {}).items():
            self.add(old, new)

    def add(self, old: str, new: str) -> None:
        self._map[old[:15]] = new

    def get(self, old: str | None) -> str | None:
        if not old:
            return None
        return self._map.get(old[:15])

    def __contains__(self, old: object) -> bool:
        return isinstance(old, str) and old[:15] in self._map

    def __len__(self) -> int:
        return len(self._map)

    def items(self) -> list[tuple[str, str]]:
        return list(self._map.items())


@dataclass(frozen=True)
class PreparedWrite:
    """One record's write: ``values`` to send now; ``deferred`` reference fields (old ids) to set
    in pass 2; ``unresolved`` references that could not be mapped (sent as null); ``dropped`` fields
    the target cannot accept (not createable/updateable or missing there)."""

    object_name: str
    operation: Operation
    source_id: str
    values: Mapping[str, Any]
    deferred: Mapping[str, str] = field(default_factory=dict)
    unresolved: Mapping[str, str] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()


def _remap(
    fname: str,
    old: Any,
    f: FieldInfo,
    id_map: IdMap,
    key_prefixes: Mapping[str, str],
    exists_in_target: Callable[[str, str], bool],
) -> tuple[str | None, bool]:
    """Resolve one reference value -> (value to send, resolved?)."""
    if old is None or old == "":
        return None, True
    new = id_map.get(old)
    if new is not None:
        return new, True
    target_obj = object_for_id(old, key_prefixes)
    if target_obj is None and len(f.reference_to) == 1:
        target_obj = f.reference_to[0]
    if target_obj is not None and exists_in_target(target_obj, old):
        return old, True
    return None, False


def prepare_record(
    record: Mapping[str, Any],
    *,
    object_name: str,
    target: ObjectSchema,
    operation: Operation,
    id_map: IdMap,
    key_prefixes: Mapping[str, str],
    deferred_fields: Iterable[str] = (),
    exists_in_target: Callable[[str, str], bool] = lambda _o, _i: False,
    skip_fields: Iterable[str] = (),
    only_fields: Iterable[str] | None = None,
) -> PreparedWrite:
    """Build the values to send for one backed-up ``record``.

    Never includes a field the target does not accept for ``operation``; references are remapped
    (``deferred_fields`` are left out and returned for pass 2); ``only_fields`` restricts the
    values (revert-fields); ``skip_fields`` are dropped silently (``--skip-missing-fields``)."""
    writable = writable_fields(target, operation)
    deferred_set = {n.lower() for n in deferred_fields}
    skip = {n.lower() for n in skip_fields}
    only = None if only_fields is None else {n.lower() for n in only_fields}
    values: dict[str, Any] = {}
    deferred: dict[str, str] = {}
    unresolved: dict[str, str] = {}
    dropped: list[str] = []
    for name, value in record.items():
        low = name.lower()
        if low in SYSTEM_FIELDS or name.startswith("$") or low in skip:
            continue
        if only is not None and low not in only:
            continue
        f = writable.get(low)
        if f is None:
            dropped.append(name)
            continue
        if isinstance(value, Mapping):  # a file reference or a compound value: not sent here
            dropped.append(name)
            continue
        if f.type == "reference":
            if low in deferred_set:
                if value:
                    deferred[f.name] = value
                if operation is Operation.INSERT:
                    continue
                values[f.name] = None
                continue
            new, ok = _remap(f.name, value, f, id_map, key_prefixes, exists_in_target)
            if not ok:
                unresolved[f.name] = value
            values[f.name] = new
            continue
        values[f.name] = value
    if operation is Operation.INSERT:
        values = {k: v for k, v in values.items() if v is not None}
    return PreparedWrite(
        object_name=object_name,
        operation=operation,
        source_id=str(record.get("Id") or ""),
        values=values,
        deferred=deferred,
        unresolved=unresolved,
        dropped=tuple(sorted(dropped)),
    )


def prepare_relink(
    write: PreparedWrite,
    *,
    new_id: str,
    id_map: IdMap,
    key_prefixes: Mapping[str, str],
    exists_in_target: Callable[[str, str], bool] = lambda _o, _i: False,
    target: ObjectSchema,
) -> PreparedWrite | None:
    """Pass 2 for a record inserted in pass 1: set its deferred references (now mappable).
    ``None`` when there is nothing to set."""
    if not write.deferred:
        return None
    values: dict[str, Any] = {"Id": new_id}
    unresolved: dict[str, str] = {}
    for fname, old in write.deferred.items():
        f = target.field(fname)
        if f is None or not f.updateable:
            continue
        new, ok = _remap(fname, old, f, id_map, key_prefixes, exists_in_target)
        if not ok:
            unresolved[fname] = old
            continue
        values[f.name] = new
    if len(values) == 1 and not unresolved:
        return None
    return PreparedWrite(
        object_name=write.object_name,
        operation=Operation.RELINK,
        source_id=write.source_id,
        values=values,
        unresolved=unresolved,
    )


def values_equal(a: Any, b: Any) -> bool:
    """Field equality as a user sees it: ids compare in either form, numbers by value, ``""`` is null."""
    if a == "":
        a = None
    if b == "":
        b = None
    if a == b:
        return True
    if isinstance(a, str) and isinstance(b, str) and len(a) in (15, 18) and len(b) in (15, 18):
        return same_id(a, b) and (len(a) == len(b) or a[:15] == b[:15])
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return float(a) == float(b)
    return False


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Field -> (old value, new value) for every field whose value differs (missing = null).
    System bookkeeping fields (LastModifiedDate, SystemModstamp, ...) are included: callers that
    want only data changes pass them through :func:`data_changes`."""
    out: dict[str, tuple[Any, Any]] = {}
    for name in list(dict.fromkeys([*old.keys(), *new.keys()])):
        a, b = old.get(name), new.get(name)
        if not values_equal(a, b):
            out[name] = (a, b)
    return out


_BOOKKEEPING = frozenset(
    {"lastmodifieddate", "lastmodifiedbyid", "systemmodstamp", "lastvieweddate", "lastreferenceddate"}
)


def data_changes(changes: Mapping[str, tuple[Any, Any]]) -> dict[str, tuple[Any, Any]]:
    """``changes`` without bookkeeping fields that change on every save."""
    return {k: v for k, v in changes.items() if k.lower() not in _BOOKKEEPING}


def revert_changes(
    backup: Mapping[str, Any],
    current: Mapping[str, Any],
    target: ObjectSchema,
    *,
    fields: Iterable[str] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Fields to PATCH so that ``current`` gets ``backup``'s values back: only updateable fields
    whose value differs (restricted to ``fields`` when given). Returns (values, not_updateable)
    where ``not_updateable`` lists differing fields the target will not let us change."""
    writable = writable_fields(target, Operation.UPDATE)
    only = None if fields is None else {n.lower() for n in fields}
    values: dict[str, Any] = {}
    refused: list[str] = []
    for name, (_have, want) in data_changes(changed_fields(current, backup)).items():
        low = name.lower()
        if low in SYSTEM_FIELDS or name.startswith("$") or (only is not None and low not in only):
            continue
        if name not in backup:
            continue  # a field added after the backup: nothing to revert to
        if isinstance(want, Mapping):
            continue
        f = writable.get(low)
        if f is None:
            refused.append(name)
            continue
        values[f.name] = want
    return values, sorted(refused)


def _norm(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and len(v) == 18 and v.isalnum():
        return v[:15]  # ids compare in either form
    return v


def fingerprint(object_name: str, values: Mapping[str, Any]) -> str:
    """A stable hash of the values sent for one insert: used to recognise, after a crash, records a
    batch created before its results were recorded (a resumed restore then claims them instead of
    inserting again)."""
    norm = {k.lower(): _norm(v) for k, v in values.items() if v is not None and v != ""}
    blob = json.dumps([object_name.lower(), norm], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]
