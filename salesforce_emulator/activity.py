"""Org activity between backups, deterministic by seed: updates, deletes, undeletes, purges, new and
replaced files, merges and schema changes. Every function returns a summary naming exactly the ids it
changed, so tests can compare a backup or restore with :meth:`Org.true_records`.

All writes go through the :class:`Org` API (validation, stamps, recycle bin) inside one transaction.
"""

from __future__ import annotations

import base64
import random

from .generator import HOSTILE
from .org import Org, fmt_dt

# field -> value maker, per object touched by mutate()
_UPDATES: dict[str, list[tuple[str, str]]] = {
    "Account": [
        ("Description", "text"),
        ("Rating", "Hot|Warm|Cold"),
        ("NumberOfEmployees", "int"),
        ("AnnualRevenue", "money"),
        ("Phone", "phone"),
    ],
    "Contact": [("Title", "text"), ("Phone", "phone"), ("Description", "text")],
    "Lead": [
        ("Status", "Open - Not Contacted|Working - Contacted|Closed - Not Converted"),
        ("Title", "text"),
    ],
    "Opportunity": [
        ("StageName", "Prospecting|Qualification|Closed Won|Closed Lost"),
        ("Amount", "money"),
        ("NextStep", "text"),
    ],
    "Case": [
        ("Status", "New|Working|Escalated|Closed"),
        ("Priority", "High|Medium|Low"),
        ("Subject", "text"),
    ],
    "Task": [("Status", "Not Started|In Progress|Completed"), ("Description", "text")],
    "Event": [("Location", "text")],
    "Project__c": [
        ("Status__c", "Planned|Active|On Hold|Done"),
        ("Completion__c", "pct"),
        ("Description__c", "text"),
    ],
    "Milestone__c": [("Done__c", "bool"), ("Weight__c", "money")],
    "Campaign": [("Status", "Planned|In Progress|Completed|Aborted")],
    "Product2": [("Description", "text")],
}
DEFAULT_OBJECTS = tuple(_UPDATES)


def _value(rng: random.Random, kind: str):
    if kind == "text":
        return rng.choice(HOSTILE) if rng.random() < 0.2 else f"Updated {rng.randrange(10**9)}"
    if kind == "int":
        return rng.randint(1, 100000)
    if kind == "money":
        return round(rng.uniform(1, 1e6), 2)
    if kind == "pct":
        return rng.randint(0, 100)
    if kind == "phone":
        return f"+1 212 555 {rng.randrange(10000):04d}"
    if kind == "bool":
        return rng.random() < 0.5
    return rng.choice(kind.split("|"))


def _live_ids(org: Org, sobject: str) -> list[str]:
    with org._lock:
        return [
            r[0] for r in org._conn.execute(f'SELECT Id FROM "{sobject}" WHERE IsDeleted = 0 ORDER BY rowid')
        ]


def _add(summary: dict, key: str, sobject: str, rid: str) -> None:
    summary[key].setdefault(sobject, []).append(rid)


def mutate(
    org: Org,
    *,
    seed: int,
    update_share: float = 0.01,
    delete_share: float = 0.002,
    undelete: int = 0,
    purge: int = 0,
    new_files: int = 0,
    objects: tuple[str, ...] | list[str] | None = None,
) -> dict:
    """Update ``update_share`` and soft-delete ``delete_share`` of the live records of each object (at
    least one each when the share is > 0 and the object has records), restore ``undelete`` and purge
    ``purge`` records from the recycle bin, and add ``new_files`` ContentVersions.

    Returns ``{"at", "updated", "deleted", "undeleted", "purged", "created", "lookups"}``; each but
    "at" maps an object name to the list of ids changed. ``deleted`` includes the records deleted with
    their parent (master-detail, an account's contacts, ...); ``lookups`` lists records whose lookup
    fields Salesforce cleared (on delete) or restored (on undelete) as a side effect: their
    SystemModstamp moved. A record can appear in several lists."""
    rng = random.Random(seed)
    summary: dict = {
        "at": fmt_dt(org.clock.now()),
        "updated": {},
        "deleted": {},
        "undeleted": {},
        "purged": {},
        "created": {},
        "lookups": {},
    }
    with org.transaction():
        # recycle bin work first, on what was there before this round
        with org._lock:
            binned = [
                tuple(r)
                for r in org._conn.execute(
                    "SELECT d.id, d.sobject FROM _deleted d WHERE d.cascade_of IS NULL ORDER BY d.deleted_date, d.id"
                )
            ]
        in_bin = [(i, s) for i, s in binned if _in_bin(org, s, i)]
        chosen_undelete = rng.sample(in_bin, min(undelete, len(in_bin)))
        for rid, sobject in chosen_undelete:
            cascade = _cascade_of(org, rid)
            for cid, cobj in _cleared_children(org, [rid] + [c for c, _ in cascade]):
                _add(summary, "lookups", cobj, cid)
            org.undelete(rid)
            _add(summary, "undeleted", sobject, rid)
            for cid, cobj in cascade:
                _add(summary, "undeleted", cobj, cid)
        rest = [x for x in in_bin if x not in chosen_undelete]
        for rid, sobject in rng.sample(rest, min(purge, len(rest))):
            cascade = _cascade_of(org, rid)
            org.purge(rid)
            _add(summary, "purged", sobject, rid)
            for cid, cobj in cascade:
                _add(summary, "purged", cobj, cid)
        gone: set[str] = set()
        for sobject in objects or DEFAULT_OBJECTS:
            ids = [i for i in _live_ids(org, sobject) if i not in gone]
            if not ids:
                continue
            n_upd = min(len(ids), max(1, round(len(ids) * update_share))) if update_share > 0 else 0
            n_del = min(len(ids) - n_upd, max(1, round(len(ids) * delete_share))) if delete_share > 0 else 0
            picked = rng.sample(ids, n_upd + n_del)
            fields = _UPDATES.get(sobject, [])
            for rid in picked[:n_upd]:
                if rid in gone:
                    continue
                name, kind = rng.choice(fields) if fields else (None, "")
                org.update(sobject, rid, {name: _value(rng, kind)} if name else {})
                _add(summary, "updated", sobject, rid)
            for rid in picked[n_upd:]:
                if rid in gone:
                    continue
                org.delete(sobject, rid)
                _add(summary, "deleted", sobject, rid)
                gone.add(rid)
                cascade = _cascade_of(org, rid)
                for cid, cobj in cascade:
                    _add(summary, "deleted", cobj, cid)
                    gone.add(cid)
                for cid, cobj in _cleared_children(org, [rid] + [c for c, _ in cascade]):
                    _add(summary, "lookups", cobj, cid)
        # an update may have hit a record that a later delete cascaded away: report it as deleted only
        for sobject, lst in list(summary["updated"].items()):
            kept = [i for i in lst if i not in gone]
            if kept:
                summary["updated"][sobject] = kept
            else:
                del summary["updated"][sobject]
        for key in ("deleted", "undeleted", "purged", "lookups"):
            summary[key] = {k: list(dict.fromkeys(v)) for k, v in summary[key].items()}
        if new_files:
            parents = _live_ids(org, "Account")
            for _ in range(new_files):
                rid = _new_file(org, rng, rng.choice(parents) if parents else None)
                _add(summary, "created", "ContentVersion", rid)
    return summary


def _in_bin(org: Org, sobject: str, rid: str) -> bool:
    with org._lock:
        row = org._conn.execute(f'SELECT IsDeleted FROM "{sobject}" WHERE Id = ?', (rid,)).fetchone()
    return bool(row and row[0])


def _cleared_children(org: Org, parents: list[str]) -> list[tuple[str, str]]:
    """(child id, object) of records whose lookups to ``parents`` were cleared by their deletion."""
    out = []
    with org._lock:
        for p in parents:
            for (cid,) in org._conn.execute(
                "SELECT child FROM _cleared WHERE parent = ? ORDER BY child", (p,)
            ):
                obj = org._by_prefix.get(cid[:3])
                if obj is not None:
                    out.append((cid, obj.name))
    return out


def _cascade_of(org: Org, rid: str) -> list[tuple[str, str]]:
    with org._lock:
        return [
            tuple(r)
            for r in org._conn.execute(
                "SELECT id, sobject FROM _deleted WHERE cascade_of = ? ORDER BY id", (rid,)
            )
        ]


def _file_bytes(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def _new_file(
    org: Org, rng: random.Random, parent: str | None, doc_id: str | None = None, size: int | None = None
) -> str:
    size = size if size is not None else int(10 ** rng.uniform(1, 5))
    n = rng.randrange(10**6)
    values = {
        "Title": f"Activity file {n}",
        "PathOnClient": f"activity-{n}.bin",
        "VersionData": base64.b64encode(_file_bytes(rng, size)).decode(),
    }
    if doc_id:
        values["ContentDocumentId"] = doc_id
        values["ReasonForChange"] = "replaced by activity"
    elif parent:
        values["FirstPublishLocationId"] = parent
    return org.create("ContentVersion", values)


def add_custom_field(
    org: Org,
    sobject: str,
    name: str,
    field_type: str = "string",
    *,
    seed: int = 1,
    fill_share: float = 0.5,
    **props,
) -> dict:
    """Add custom field ``name`` to ``sobject`` and fill it on ``fill_share`` of the live records
    (those records' SystemModstamp moves). Returns ``{"sobject", "field", "updated": [ids]}``."""
    rng = random.Random(seed)
    kinds = {
        "string": "text",
        "textarea": "text",
        "int": "int",
        "double": "money",
        "currency": "money",
        "percent": "pct",
        "boolean": "bool",
        "date": "date",
        "picklist": "A|B|C",
    }
    org.add_field(sobject, name, field_type, **props)
    ids = _live_ids(org, sobject)
    chosen = sorted(rng.sample(ids, round(len(ids) * fill_share)), key=ids.index) if fill_share > 0 else []
    with org.transaction():
        for rid in chosen:
            kind = kinds.get(field_type, "text")
            value = (
                f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                if kind == "date"
                else _value(rng, kind)
            )
            if field_type == "picklist" and props.get("picklist"):
                value = rng.choice(list(props["picklist"]))
            org.update(sobject, rid, {name: value})
    return {"sobject": sobject, "field": name, "updated": chosen}


def replace_file(
    org: Org, content_document_id: str | None = None, *, seed: int = 1, size: int | None = None
) -> dict:
    """Upload a new version of a file (a new ContentVersion of the same ContentDocument; the old one
    stops being IsLatest). Returns ``{"ContentDocumentId", "old_version", "new_version"}``."""
    rng = random.Random(seed)
    with org._lock:
        if content_document_id is None:
            docs = [
                r[0]
                for r in org._conn.execute(
                    'SELECT Id FROM "ContentDocument" WHERE IsDeleted = 0 ORDER BY rowid'
                )
            ]
            if not docs:
                raise ValueError("the org has no files to replace")
            content_document_id = rng.choice(docs)
        row = org._conn.execute(
            'SELECT LatestPublishedVersionId FROM "ContentDocument" WHERE Id = ?',
            (org._norm_id(content_document_id),),
        ).fetchone()
    if row is None:
        raise ValueError(f"no ContentDocument {content_document_id}")
    new = _new_file(org, rng, None, doc_id=org._norm_id(content_document_id), size=size)
    return {"ContentDocumentId": org._norm_id(content_document_id), "old_version": row[0], "new_version": new}


def merge_records(org: Org, sobject: str = "Account", *, seed: int = 1, count: int = 1) -> dict:
    """Merge ``count`` groups of (master + 1 or 2 victims). Returns ``{"merged": [{"master",
    "victims"}], "reparented": {object: [child ids]}}``."""
    rng = random.Random(seed)
    out: dict = {"merged": [], "reparented": {}}
    with org.transaction():
        ids = _live_ids(org, sobject)
        for _ in range(count):
            if len(ids) < 2:
                break
            group = rng.sample(ids, min(len(ids), rng.choice([2, 3])))
            master, victims = group[0], group[1:]
            for child, f in org._children.get(sobject.lower(), []):
                marks = ", ".join("?" * len(victims))
                for (cid,) in org._conn.execute(
                    f'SELECT Id FROM "{child.name}" WHERE "{f.name}" IN ({marks})', victims
                ).fetchall():
                    out["reparented"].setdefault(child.name, []).append(cid)
            org.merge(sobject, master, victims)
            out["merged"].append({"master": master, "victims": victims})
            ids = [i for i in ids if i not in victims]
    return out
