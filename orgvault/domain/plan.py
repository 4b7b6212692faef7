"""The backup plan: which objects to back up, which fields to read, how, and what was left out and why.

Pure: built from describeGlobal ``sobjects`` entries and per-object :class:`ObjectSchema` values;
``describe`` is passed in as a callable so that only objects that survive the global rules are
described (each describe is an API call).

Skip rules, in order (the first that matches is the reported reason; nothing is dropped silently,
every skipped object is in :attr:`BackupPlan.skipped`):

1. ``exclude`` setting (exact names or ``fnmatch`` patterns, case-insensitive) → ``excluded``.
2. ``only`` setting given and the object not in it → ``not_selected``.
3. describe flags, which no setting can override because Salesforce refuses the read:
   ``queryable`` false → ``not_queryable``; ``retrieveable`` false → ``not_retrieveable``.
4. ``deprecatedAndHidden`` → ``deprecated``.
5. name rules for objects that hold no restorable business data (an ``include`` setting overrides
   these and rule 4): ``*ChangeEvent`` (change data capture), ``*Feed`` (Chatter feeds), ``*History``
   (field history, read-only audit), ``*Share`` (sharing rows, recomputed by Salesforce),
   ``*__Tag``, ``*__e`` (platform events), ``*__x`` (external objects: data lives elsewhere),
   ``*__b`` (big objects: no queryAll), ``*__mdt`` (custom metadata: deployed, not data), and a
   few system views (``RecentlyViewed``, ``*EventRelation`` views such as ``EventWhoRelation``,
   ``AggregateResult``, ...) → ``name_rule`` with the rule in ``detail``.
6. after describe: no ``Id`` field or no readable field → ``no_fields``.

Fields: compound ``address``/``location`` fields are never selected (their components are);
``base64`` fields (ContentVersion.VersionData, Attachment.Body, Document.Body, any other) are not
selected but listed in :attr:`ObjectPlan.file_fields` and fetched per record by the file path.
Calculated (formula, roll-up) fields ARE selected: a snapshot shows them for browse and diff, but
restore never writes them (they are not createable/updateable; :attr:`ObjectPlan.calculated_fields`
names them). Formula values change without a ``SystemModstamp`` bump, so an incremental snapshot's
formula values are as of the record's last change.

Strategy: Bulk API 2.0 unless the object is known to be refused by Bulk (``BULK_UNSUPPORTED``:
Attachment, the picklist-status objects, ...); any other refusal is handled at run time by
falling back to REST (``BulkNotSupported``). Objects Salesforce only queries with a parent-id
filter (``FILTER_REQUIRED``: ContentDocumentLink, filtered on ContentDocumentId) are read through
REST by the source in batches of parent ids; nothing changes for the caller. ``fields_hash`` is a hash of the selected fields and
file fields with their types, order-independent: a change means the object's schema changed and
an incremental must re-read it in full.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from orgvault.domain.records import COMPOUND_TYPES

if TYPE_CHECKING:  # ObjectSchema is the port's value type; the domain only reads it
    from orgvault.ports import ObjectSchema


class Strategy(StrEnum):
    BULK = "bulk"
    REST = "rest"


class SkipReason(StrEnum):
    EXCLUDED = "excluded"
    NOT_SELECTED = "not_selected"
    NOT_QUERYABLE = "not_queryable"
    NOT_RETRIEVEABLE = "not_retrieveable"
    DEPRECATED = "deprecated"
    NAME_RULE = "name_rule"
    NO_FIELDS = "no_fields"
    DESCRIBE_FAILED = "describe_failed"


# Objects Bulk API 2.0 refuses outright (INVALIDENTITY), per Salesforce's documentation.
BULK_UNSUPPORTED = frozenset(
    name.lower()
    for name in (
        "Attachment",
        "CaseStatus",
        "ContractStatus",
        "LeadStatus",
        "OpportunityStage",
        "PartnerRole",
        "SolutionStatus",
        "TaskPriority",
        "TaskStatus",
        "UserRecordAccess",
        "RecentlyViewed",
        "EventWhoRelation",
        "TaskWhoRelation",
        "AcceptedEventRelation",
        "DeclinedEventRelation",
        "UndecidedEventRelation",
        "EventRelation",
        "ContentDocumentLink",  # needs a parent-id filter: read through REST in batches of ids
    )
)

# Objects Salesforce only lets you query with a filter on a parent id ("Implementation restriction:
# ContentDocumentLink requires a filter by a single Id on ContentDocumentId or LinkedEntityId"):
# name → (parent object, filter field). The source reads them in batches of parent ids (REST).
FILTER_REQUIRED: dict[str, tuple[str, str]] = {
    "contentdocumentlink": ("ContentDocument", "ContentDocumentId"),
}

# (suffix, rule description) — case-sensitive suffixes as Salesforce spells them.
_SUFFIX_RULES: tuple[tuple[str, str], ...] = (
    ("ChangeEvent", "*ChangeEvent: change data capture events"),
    ("Feed", "*Feed: Chatter feed"),
    ("History", "*History: field history (read-only audit trail)"),
    ("Share", "*Share: sharing rows (recomputed by Salesforce)"),
    ("__Tag", "*__Tag: tags"),
    ("__e", "*__e: platform event"),
    ("__x", "*__x: external object (data lives outside Salesforce)"),
    ("__b", "*__b: big object (no queryAll)"),
    ("__mdt", "*__mdt: custom metadata type (deployed, not data)"),
    ("EventRelation", "*EventRelation: event attendee view"),
)
_NAME_RULES: dict[str, str] = {
    "recentlyviewed": "RecentlyViewed: per-user view",
    "aggregateresult": "AggregateResult: not an object",
    "userrecordaccess": "UserRecordAccess: computed view",
    "eventwhorelation": "EventWhoRelation: event view",
    "taskwhorelation": "TaskWhoRelation: task view",
}


@dataclass(frozen=True)
class PlanSettings:
    """Selection overrides. Names are exact or ``fnmatch`` patterns, case-insensitive.

    ``only``: when non-empty, back up just these objects. ``include``: back up these even if a name
    rule or ``deprecatedAndHidden`` would skip them. ``exclude``: never back up these (wins over
    both)."""

    only: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any] | None) -> PlanSettings:
        """From an org's ``settings`` dict (keys ``only``/``include``/``exclude``, lists or
        comma-separated strings)."""
        settings = settings or {}

        def names(key: str) -> tuple[str, ...]:
            raw = settings.get(key) or ()
            if isinstance(raw, str):
                raw = raw.split(",")
            return tuple(str(x).strip() for x in raw if str(x).strip())

        return cls(only=names("only"), include=names("include"), exclude=names("exclude"))


@dataclass(frozen=True)
class ObjectPlan:
    """How to back up one object. ``fields`` are the columns to select (``Id`` first, no compound,
    no base64); ``field_types`` gives each one's Salesforce type in the same order; ``file_fields``
    the base64 fields whose bodies are downloaded per record."""

    name: str
    fields: tuple[str, ...]
    field_types: tuple[str, ...]
    file_fields: tuple[str, ...]
    strategy: Strategy
    fields_hash: str
    calculated_fields: tuple[str, ...] = ()
    watermark_field: str | None = None  # SystemModstamp, else LastModifiedDate, else None
    has_is_deleted: bool = False
    replicateable: bool = True
    key_prefix: str | None = None

    @property
    def specs(self) -> list[tuple[str, str]]:
        """``(name, type)`` pairs, as ``orgvault.domain.records`` wants them."""
        return list(zip(self.fields, self.field_types, strict=True))


@dataclass(frozen=True)
class SkippedObject:
    name: str
    reason: SkipReason
    detail: str = ""


@dataclass(frozen=True)
class BackupPlan:
    objects: tuple[ObjectPlan, ...]
    skipped: tuple[SkippedObject, ...]

    def get(self, name: str) -> ObjectPlan | None:
        return next((o for o in self.objects if o.name.lower() == name.lower()), None)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, p.lower()) for p in patterns)


def name_rule(name: str) -> str | None:
    """The name rule that marks ``name`` as a non-data object, or ``None``."""
    if name.lower() in _NAME_RULES:
        return _NAME_RULES[name.lower()]
    for suffix, rule in _SUFFIX_RULES:
        if name.endswith(suffix) and name != suffix:
            return rule
    return None


def skip_reason(entry: Mapping[str, Any], settings: PlanSettings = PlanSettings()) -> SkippedObject | None:
    """Why the describeGlobal ``entry`` is not backed up, or ``None`` when it should be described
    and planned. See the module docstring for the rules and their order."""
    name = str(entry.get("name", ""))
    if settings.exclude and _matches(name, settings.exclude):
        return SkippedObject(name, SkipReason.EXCLUDED, "excluded by settings")
    if settings.only and not _matches(name, settings.only):
        return SkippedObject(name, SkipReason.NOT_SELECTED, "not in the 'only' setting")
    if not entry.get("queryable", False):
        return SkippedObject(name, SkipReason.NOT_QUERYABLE, "describeGlobal: queryable=false")
    if entry.get("retrieveable") is False:
        return SkippedObject(name, SkipReason.NOT_RETRIEVEABLE, "describeGlobal: retrieveable=false")
    included = bool(settings.include) and _matches(name, settings.include)
    if entry.get("deprecatedAndHidden") and not included:
        return SkippedObject(name, SkipReason.DEPRECATED, "describeGlobal: deprecatedAndHidden=true")
    rule = name_rule(name)
    if rule and not included:
        return SkippedObject(name, SkipReason.NAME_RULE, rule)
    return None


def fields_hash(specs: Iterable[tuple[str, str]]) -> str:
    """Order-independent hash of ``(name, type)`` pairs (names case-insensitive)."""
    lines = sorted(f"{n.lower()}:{t.lower()}" for n, t in specs)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]


def plan_object(entry: Mapping[str, Any], schema: ObjectSchema) -> ObjectPlan | SkippedObject:
    """The plan for one object from its describeGlobal ``entry`` and describe ``schema``."""
    name = schema.name
    selected: list[tuple[str, str]] = []
    files: list[tuple[str, str]] = []
    calculated: list[str] = []
    for f in schema.fields:
        ftype = f.type.lower()
        if ftype in COMPOUND_TYPES:
            continue
        if ftype == "base64":
            files.append((f.name, f.type))
            continue
        selected.append((f.name, f.type))
        if f.calculated:
            calculated.append(f.name)
    id_field = next((s for s in selected if s[0].lower() == "id"), None)
    if id_field is None:
        return SkippedObject(name, SkipReason.NO_FIELDS, "describe has no Id field")
    selected.remove(id_field)
    selected.insert(0, id_field)
    names = {n.lower() for n, _ in selected}
    watermark = (
        "SystemModstamp"
        if "systemmodstamp" in names
        else ("LastModifiedDate" if "lastmodifieddate" in names else None)
    )
    strategy = Strategy.REST if name.lower() in BULK_UNSUPPORTED else Strategy.BULK
    return ObjectPlan(
        name=name,
        fields=tuple(n for n, _ in selected),
        field_types=tuple(t for _, t in selected),
        file_fields=tuple(n for n, _ in files),
        strategy=strategy,
        fields_hash=fields_hash(selected + files),
        calculated_fields=tuple(calculated),
        watermark_field=watermark,
        has_is_deleted="isdeleted" in names,
        replicateable=bool(entry.get("replicateable", True)),
        key_prefix=schema.key_prefix or entry.get("keyPrefix"),
    )


def build_plan(
    sobjects: Sequence[Mapping[str, Any]],
    describe: Callable[[str], ObjectSchema],
    settings: PlanSettings = PlanSettings(),
    *,
    on_describe_error: type[Exception] | tuple[type[Exception], ...] = (),
) -> BackupPlan:
    """Plan a backup from describeGlobal ``sobjects``. ``describe`` is called once per object that
    passes :func:`skip_reason`, in name order. Exceptions of the ``on_describe_error`` types skip
    that object with reason ``describe_failed`` (others propagate). Objects come back sorted by
    name; skipped ones too."""
    objects: list[ObjectPlan] = []
    skipped: list[SkippedObject] = []
    for entry in sorted(sobjects, key=lambda e: str(e.get("name", ""))):
        reason = skip_reason(entry, settings)
        if reason is not None:
            skipped.append(reason)
            continue
        try:
            schema = describe(str(entry["name"]))
        except on_describe_error as exc:  # type: ignore[misc]
            skipped.append(SkippedObject(str(entry["name"]), SkipReason.DESCRIBE_FAILED, str(exc)))
            continue
        result = plan_object(entry, schema)
        (objects if isinstance(result, ObjectPlan) else skipped).append(result)  # type: ignore[arg-type]
    return BackupPlan(objects=tuple(objects), skipped=tuple(skipped))


def soql(object_name: str, fields: Sequence[str], where: str | None = None) -> str:
    """``SELECT f1, f2 FROM Obj [WHERE ...]`` — no ORDER BY or LIMIT (they disable Bulk's chunking)."""
    text = f"SELECT {', '.join(fields)} FROM {object_name}"
    return f"{text} WHERE {where}" if where else text
