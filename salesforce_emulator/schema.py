"""The emulated org's metadata: sObjects, their fields, and the describe JSON built from them.

A :class:`FieldDef` is *stored* (a column in the object's SQLite table) unless it is a compound field
(address, location: assembled from its components) or has a ``formula`` (an SQL expression over the
row, evaluated on read -- so it never bumps SystemModstamp). ``{t}`` in a formula is the table alias.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

STRING_TYPES = frozenset(
    {
        "id",
        "string",
        "textarea",
        "email",
        "phone",
        "url",
        "picklist",
        "multipicklist",
        "combobox",
        "reference",
        "encryptedstring",
    }
)
NUMBER_TYPES = frozenset({"int", "long", "double", "currency", "percent"})
COMPOUND_TYPES = frozenset({"address", "location"})

SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "long": "xsd:long",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "time": "xsd:time",
    "base64": "xsd:base64Binary",
    "address": "urn:address",
    "location": "urn:location",
    "anyType": "xsd:anyType",
    "json": "xsd:string",
}


@dataclass(frozen=True)
class FieldDef:
    """One field of an sObject, as describe reports it."""

    name: str
    type: str
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    calculated: bool = False
    formula: str | None = None  # SQL expression; makes the field read-only and computed on read
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    cascade_delete: bool = False  # master-detail
    external_id: bool = False
    unique: bool = False
    picklist: tuple[str, ...] = ()
    compound_field_name: str | None = None
    custom: bool = False
    defaulted_on_create: bool = False
    default: object = None
    name_field: bool = False
    auto_number: bool = False
    extra_type_info: str | None = None
    html_formatted: bool = False

    @property
    def stored(self) -> bool:
        return self.formula is None and self.type not in COMPOUND_TYPES

    @property
    def required(self) -> bool:
        """Must be given on create."""
        return (
            not self.nillable
            and self.createable
            and not self.defaulted_on_create
            and self.type != "boolean"
            and self.default is None
        )

    @property
    def polymorphic(self) -> bool:
        return len(self.reference_to) > 1

    def describe(self) -> dict:
        t = self.type
        is_text = t in STRING_TYPES
        return {
            "aggregatable": t not in ("textarea", "base64", "address", "location") or self.length <= 255,
            "aiPredictionField": False,
            "autoNumber": self.auto_number,
            "byteLength": self.length * 3 if is_text else 0,
            "calculated": self.calculated or (self.formula is not None and self.custom),
            "calculatedFormula": self.formula if self.calculated else None,
            "cascadeDelete": self.cascade_delete,
            "caseSensitive": False,
            "compoundFieldName": self.compound_field_name,
            "controllerName": None,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default if t == "boolean" else None,
            "defaultValueFormula": None,
            "defaultedOnCreate": self.defaulted_on_create or t == "boolean",
            "dependentPicklist": False,
            "deprecatedAndHidden": False,
            "digits": self.digits,
            "displayLocationInDecimal": t == "location",
            "encrypted": t == "encryptedstring",
            "externalId": self.external_id,
            "extraTypeInfo": self.extra_type_info,
            "filterable": t not in ("textarea", "base64", "address", "location") or self.length <= 255,
            "filteredLookupInfo": None,
            "formulaTreatNullNumberAsZero": False,
            "groupable": t in STRING_TYPES and t != "textarea" or t in ("boolean", "date", "int"),
            "highScaleNumber": False,
            "htmlFormatted": self.html_formatted,
            "idLookup": t == "id" or self.external_id or self.name == "Username",
            "inlineHelpText": None,
            "label": self.label or self.name.replace("__c", "").replace("_", " "),
            "length": self.length if is_text else 0,
            "mask": None,
            "maskType": None,
            "name": self.name,
            "nameField": self.name_field,
            "namePointing": self.polymorphic,
            "nillable": self.nillable,
            "permissionable": self.nillable and not self.calculated and self.createable,
            "picklistValues": [
                {
                    "active": True,
                    "defaultValue": i == 0 and self.defaulted_on_create,
                    "label": v,
                    "validFor": None,
                    "value": v,
                }
                for i, v in enumerate(self.picklist)
            ],
            "polymorphicForeignKey": self.polymorphic,
            "precision": self.precision,
            "queryByDistance": False,
            "referenceTargetField": None,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "relationshipOrder": 0 if self.cascade_delete else None,
            "restrictedDelete": False,
            "restrictedPicklist": False,
            "scale": self.scale,
            "searchPrefilterable": False,
            "soapType": SOAP_TYPES.get(t, "xsd:string"),
            "sortable": t not in ("textarea", "base64", "address", "location", "multipicklist")
            or self.length <= 255,
            "type": t,
            "unique": self.unique,
            "updateable": self.updateable,
            "writeRequiresMasterRead": False,
        }


@dataclass
class ObjectDef:
    """One sObject. ``has_table`` is False for objects that exist in describe only."""

    name: str
    key_prefix: str | None
    fields: list[FieldDef]
    label: str = ""
    custom: bool = False
    queryable: bool = True
    retrieveable: bool = True
    replicateable: bool = True
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    undeletable: bool = True
    searchable: bool = True
    layoutable: bool = True
    mergeable: bool = False
    bulk_supported: bool = True
    has_table: bool = True
    by_name: dict[str, FieldDef] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        self.by_name = {f.name.lower(): f for f in self.fields}

    def field(self, name: str) -> FieldDef | None:
        return self.by_name.get(name.lower())

    def stored_fields(self) -> list[FieldDef]:
        return [f for f in self.fields if f.stored]

    def has(self, name: str) -> bool:
        return name.lower() in self.by_name

    def relationship(self, rel_name: str) -> FieldDef | None:
        """The reference field whose relationshipName is ``rel_name`` (case-insensitive)."""
        low = rel_name.lower()
        for f in self.fields:
            if f.relationship_name and f.relationship_name.lower() == low:
                return f
        return None


# ---------------------------------------------------------------------------------------------------
# field shorthands


def S(name: str, length: int = 255, **kw) -> FieldDef:  # noqa: N802
    return FieldDef(name, "string", length=length, **kw)


def TA(name: str, length: int = 255, **kw) -> FieldDef:  # noqa: N802
    if length > 255:
        kw.setdefault("extra_type_info", "plaintextarea")
    return FieldDef(name, "textarea", length=length, **kw)


def PL(name: str, values: tuple[str, ...], **kw) -> FieldDef:  # noqa: N802
    return FieldDef(name, kw.pop("type", "picklist"), length=255, picklist=values, **kw)


def REF(name: str, to: tuple[str, ...] | str, rel: str | None, **kw) -> FieldDef:  # noqa: N802
    to = (to,) if isinstance(to, str) else to
    return FieldDef(name, "reference", length=18, reference_to=to, relationship_name=rel, **kw)


def B(name: str, **kw) -> FieldDef:  # noqa: N802
    kw.setdefault("default", False)
    return FieldDef(name, "boolean", nillable=False, **kw)


def INT(name: str, digits: int = 9, **kw) -> FieldDef:  # noqa: N802
    return FieldDef(name, "int", digits=digits, **kw)


def DBL(name: str, precision: int = 18, scale: int = 2, **kw) -> FieldDef:  # noqa: N802
    return FieldDef(name, kw.pop("type", "double"), precision=precision, scale=scale, **kw)


def CUR(name: str, precision: int = 18, scale: int = 2, **kw) -> FieldDef:  # noqa: N802
    return DBL(name, precision, scale, type="currency", **kw)


def PCT(name: str, precision: int = 5, scale: int = 2, **kw) -> FieldDef:  # noqa: N802
    return DBL(name, precision, scale, type="percent", **kw)


def D(name: str, **kw) -> FieldDef:  # noqa: N802
    return FieldDef(name, "date", **kw)


def DT(name: str, **kw) -> FieldDef:  # noqa: N802
    return FieldDef(name, "datetime", **kw)


def TM(name: str, **kw) -> FieldDef:  # noqa: N802
    return FieldDef(name, "time", **kw)


def EMAIL(name: str, **kw) -> FieldDef:  # noqa: N802
    return FieldDef(name, "email", length=80, **kw)


def PHONE(name: str, **kw) -> FieldDef:  # noqa: N802
    return FieldDef(name, "phone", length=40, **kw)


def URL(name: str, **kw) -> FieldDef:  # noqa: N802
    return FieldDef(name, "url", length=255, **kw)


def B64(name: str, **kw) -> FieldDef:  # noqa: N802
    return FieldDef(name, "base64", length=104857600, **kw)


RO = {"createable": False, "updateable": False}
NAME = {"nillable": False, "name_field": True}
C = {"custom": True}


def address(prefix: str) -> list[FieldDef]:
    """Components of a compound address field plus the (read-only) compound field itself."""
    comp = f"{prefix}Address"
    kw = {"compound_field_name": comp}
    return [
        TA(f"{prefix}Street", 255, **kw),
        S(f"{prefix}City", 40, **kw),
        S(f"{prefix}State", 80, **kw),
        S(f"{prefix}PostalCode", 20, **kw),
        S(f"{prefix}Country", 80, **kw),
        DBL(f"{prefix}Latitude", 18, 15, **kw),
        DBL(f"{prefix}Longitude", 18, 15, **kw),
        PL(
            f"{prefix}GeocodeAccuracy",
            (
                "Address",
                "NearAddress",
                "Block",
                "Street",
                "ExtendedZip",
                "Zip",
                "City",
                "County",
                "State",
                "Unknown",
            ),
            **kw,
        ),
        FieldDef(comp, "address", **RO),
    ]


def location(name: str) -> list[FieldDef]:
    """A custom geolocation field ``X__c`` with components ``X__Latitude__s`` / ``X__Longitude__s``."""
    base = name[:-3]
    kw = {"compound_field_name": name, "custom": True}
    return [
        DBL(f"{base}__Latitude__s", 18, 15, **kw),
        DBL(f"{base}__Longitude__s", 18, 15, **kw),
        FieldDef(name, "location", custom=True, **RO),
    ]


def system_fields(*, owner: tuple[str, ...] | None = ("User",), modified: bool = True) -> list[FieldDef]:
    out = [
        FieldDef("Id", "id", length=18, nillable=False, defaulted_on_create=True, **RO),
    ]
    if owner:
        out.append(REF("OwnerId", owner, "Owner", nillable=False, defaulted_on_create=True))
    out += [
        B("IsDeleted", **RO),
        DT("CreatedDate", nillable=False, defaulted_on_create=True, **RO),
        REF("CreatedById", "User", "CreatedBy", nillable=False, defaulted_on_create=True, **RO),
    ]
    if modified:
        out += [
            DT("LastModifiedDate", nillable=False, defaulted_on_create=True, **RO),
            REF("LastModifiedById", "User", "LastModifiedBy", nillable=False, defaulted_on_create=True, **RO),
        ]
    out.append(DT("SystemModstamp", nillable=False, defaulted_on_create=True, **RO))
    return out


def _name_formula(t: str = "{t}") -> str:
    return f"trim(coalesce({t}.FirstName || ' ', '') || coalesce({t}.LastName, ''))"


INDUSTRIES = (
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Entertainment",
    "Finance",
    "Government",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Manufacturing",
    "Media",
    "Retail",
    "Technology",
    "Transportation",
    "Utilities",
    "Other",
)
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
STAGES = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
)
ACTIVITY_PARENTS = ("Account", "Opportunity", "Case", "Campaign", "Project__c")
FILE_PARENTS = ("Account", "Contact", "Opportunity", "Case", "Project__c")


def builtin_objects() -> list[ObjectDef]:
    """The standard and custom objects of a freshly created emulated org."""
    objs: list[ObjectDef] = []

    objs.append(
        ObjectDef(
            "User",
            "005",
            [
                *system_fields(owner=None),
                S("Username", 80, nillable=False, unique=True),
                S("LastName", 80, nillable=False),
                S("FirstName", 40),
                S("Name", 121, formula=_name_formula(), name_field=True, **RO),
                EMAIL("Email", nillable=False),
                S("Alias", 8, nillable=False),
                B("IsActive", default=True),
                S("Title", 80),
                S("Department", 80),
                S("CompanyName", 80),
                PHONE("Phone"),
                REF("ManagerId", "User", "Manager"),
                PL(
                    "UserType",
                    ("Standard", "PowerPartner", "CsnOnly", "Guest"),
                    defaulted_on_create=True,
                    **RO,
                ),
                PL(
                    "TimeZoneSidKey",
                    ("America/Los_Angeles", "Europe/London", "Europe/Paris", "Asia/Tokyo"),
                    nillable=False,
                    defaulted_on_create=True,
                ),
                PL(
                    "LocaleSidKey",
                    ("en_US", "en_GB", "fr_FR", "de_DE", "ja_JP"),
                    nillable=False,
                    defaulted_on_create=True,
                ),
                PL(
                    "LanguageLocaleKey", ("en_US", "fr", "de", "ja"), nillable=False, defaulted_on_create=True
                ),
                PL("EmailEncodingKey", ("UTF-8", "ISO-8859-1"), nillable=False, defaulted_on_create=True),
                DT("LastLoginDate", **RO),
            ],
            undeletable=False,
            deletable=False,
            bulk_supported=True,
        )
    )

    objs.append(
        ObjectDef(
            "Group",
            "00G",
            [
                *system_fields(owner=("User",)),
                S("Name", 40, **NAME),
                S("DeveloperName", 80),
                PL(
                    "Type",
                    ("Regular", "Queue", "Role", "Organization"),
                    nillable=False,
                    defaulted_on_create=True,
                ),
                EMAIL("Email"),
                B("DoesSendEmailToMembers"),
                B("DoesIncludeBosses", default=True),
            ],
            undeletable=False,
        )
    )

    objs.append(
        ObjectDef(
            "Account",
            "001",
            [
                *system_fields(),
                REF("MasterRecordId", "Account", "MasterRecord", **RO),
                S("Name", 255, **NAME),
                PL(
                    "Type",
                    (
                        "Prospect",
                        "Customer - Direct",
                        "Customer - Channel",
                        "Channel Partner / Reseller",
                        "Installation Partner",
                        "Technology Partner",
                        "Other",
                    ),
                ),
                REF("ParentId", "Account", "Parent"),
                *address("Billing"),
                *address("Shipping"),
                PHONE("Phone"),
                PHONE("Fax"),
                S("AccountNumber", 40),
                URL("Website"),
                S("Sic", 20),
                PL("Industry", INDUSTRIES),
                CUR("AnnualRevenue"),
                INT("NumberOfEmployees", 8),
                PL("Ownership", ("Public", "Private", "Subsidiary", "Other")),
                S("TickerSymbol", 20),
                TA("Description", 32000),
                PL("Rating", ("Hot", "Warm", "Cold")),
                S("Site", 80),
                PL("AccountSource", LEAD_SOURCES),
                D("LastActivityDate", **RO),
                S("External_Id__c", 64, external_id=True, unique=True, **C),
                D("Customer_Since__c", **C),
                PL("Tier__c", ("Bronze", "Silver", "Gold", "Platinum"), **C),
                B("Active__c", **C),
                PCT("Discount__c", 5, 2, **C),
                TM("Support_Hours_Start__c", **C),
                TA("Notes_Long__c", 131072, **C),
                *location("Headquarters__c"),
                CUR(
                    "Revenue_Per_Employee__c",
                    calculated=True,
                    **RO,
                    **C,
                    formula="CASE WHEN {t}.NumberOfEmployees > 0 THEN round({t}.AnnualRevenue * 1.0 / "
                    "{t}.NumberOfEmployees, 2) END",
                ),
                INT(
                    "Days_Since_Created__c",
                    calculated=True,
                    **RO,
                    **C,
                    formula="CAST(julianday(sf_now()) - julianday({t}.CreatedDate) AS INTEGER)",
                ),
            ],
            mergeable=True,
        )
    )

    objs.append(
        ObjectDef(
            "Contact",
            "003",
            [
                *system_fields(),
                REF("MasterRecordId", "Contact", "MasterRecord", **RO),
                REF("AccountId", "Account", "Account"),
                S("LastName", 80, nillable=False),
                S("FirstName", 40),
                PL("Salutation", ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")),
                S("Name", 121, formula=_name_formula(), name_field=True, **RO),
                *address("Mailing"),
                PHONE("Phone"),
                PHONE("MobilePhone"),
                EMAIL("Email"),
                S("Title", 128),
                S("Department", 80),
                D("Birthdate"),
                PL("LeadSource", LEAD_SOURCES),
                REF("ReportsToId", "Contact", "ReportsTo"),
                TA("Description", 32000),
                B("HasOptedOutOfEmail"),
                # an external id that is not unique: upserts by it can match several records (300)
                S("Legacy_Id__c", 40, external_id=True, **C),
                PL(
                    "Languages__c",
                    ("English", "French", "German", "Spanish", "Japanese", "Arabic", "Hebrew"),
                    type="multipicklist",
                    **C,
                ),
                S(
                    "Account_Name__c",
                    255,
                    calculated=True,
                    **RO,
                    **C,
                    formula='(SELECT p.Name FROM "Account" p WHERE p.Id = {t}.AccountId)',
                ),
            ],
            mergeable=True,
        )
    )

    objs.append(
        ObjectDef(
            "Lead",
            "00Q",
            [
                *system_fields(owner=("User", "Group")),
                REF("MasterRecordId", "Lead", "MasterRecord", **RO),
                S("LastName", 80, nillable=False),
                S("FirstName", 40),
                S("Name", 121, formula=_name_formula(), name_field=True, **RO),
                S("Company", 255, nillable=False),
                S("Title", 128),
                EMAIL("Email"),
                PHONE("Phone"),
                *address(""),
                PL(
                    "Status",
                    (
                        "Open - Not Contacted",
                        "Working - Contacted",
                        "Closed - Converted",
                        "Closed - Not Converted",
                    ),
                    nillable=False,
                    defaulted_on_create=True,
                ),
                PL("Industry", INDUSTRIES),
                PL("LeadSource", LEAD_SOURCES),
                PL("Rating", ("Hot", "Warm", "Cold")),
                CUR("AnnualRevenue"),
                INT("NumberOfEmployees", 8),
                TA("Description", 32000),
                B("IsConverted", **RO),
                D("ConvertedDate", **RO),
                REF("ConvertedAccountId", "Account", "ConvertedAccount", **RO),
                REF("ConvertedContactId", "Contact", "ConvertedContact", **RO),
            ],
            mergeable=True,
        )
    )

    objs.append(
        ObjectDef(
            "Campaign",
            "701",
            [
                *system_fields(),
                S("Name", 80, **NAME),
                REF("ParentId", "Campaign", "Parent"),
                PL("Type", ("Conference", "Webinar", "Email", "Advertisement", "Other")),
                PL("Status", ("Planned", "In Progress", "Completed", "Aborted")),
                D("StartDate"),
                D("EndDate"),
                CUR("BudgetedCost"),
                CUR("ActualCost"),
                CUR("ExpectedRevenue"),
                B("IsActive"),
                TA("Description", 32000),
                INT("NumberOfLeads", **RO),
            ],
        )
    )

    objs.append(
        ObjectDef(
            "Product2",
            "01t",
            [
                *system_fields(owner=None),
                S("Name", 255, **NAME),
                S("ProductCode", 255),
                TA("Description", 4000),
                B("IsActive"),
                PL("Family", ("Hardware", "Software", "Services", "Training")),
                S("StockKeepingUnit", 180, external_id=True, unique=True),
                PL("QuantityUnitOfMeasure", ("Each", "Box", "Hour", "License")),
            ],
        )
    )

    objs.append(
        ObjectDef(
            "Pricebook2",
            "01s",
            [
                *system_fields(owner=None),
                S("Name", 255, **NAME),
                B("IsActive"),
                B("IsStandard", **RO),
                TA("Description", 255),
            ],
        )
    )

    objs.append(
        ObjectDef(
            "PricebookEntry",
            "01u",
            [
                *system_fields(owner=None),
                REF("Pricebook2Id", "Pricebook2", "Pricebook2", nillable=False, updateable=False),
                REF("Product2Id", "Product2", "Product2", nillable=False, updateable=False),
                S("Name", 255, formula='(SELECT p.Name FROM "Product2" p WHERE p.Id = {t}.Product2Id)', **RO),
                CUR("UnitPrice", nillable=False),
                B("IsActive"),
                B("UseStandardPrice"),
            ],
            undeletable=False,
        )
    )

    objs.append(
        ObjectDef(
            "Opportunity",
            "006",
            [
                *system_fields(),
                REF("AccountId", "Account", "Account"),
                S("Name", 120, **NAME),
                TA("Description", 32000),
                PL("StageName", STAGES, nillable=False),
                CUR("Amount"),
                PCT("Probability", 3, 0),
                CUR(
                    "ExpectedRevenue",
                    calculated=True,
                    **RO,
                    formula="round({t}.Amount * {t}.Probability / 100.0, 2)",
                ),
                DBL("TotalOpportunityQuantity", 18, 2),
                D("CloseDate", nillable=False),
                PL(
                    "Type",
                    (
                        "Existing Customer - Upgrade",
                        "Existing Customer - Replacement",
                        "Existing Customer - Downgrade",
                        "New Customer",
                    ),
                ),
                S("NextStep", 255),
                PL("LeadSource", LEAD_SOURCES),
                B(
                    "IsClosed",
                    formula="CASE WHEN {t}.StageName IN ('Closed Won','Closed Lost') THEN 1 ELSE 0 END",
                    **RO,
                ),
                B("IsWon", formula="CASE WHEN {t}.StageName = 'Closed Won' THEN 1 ELSE 0 END", **RO),
                PL("ForecastCategoryName", ("Omitted", "Pipeline", "Best Case", "Commit", "Closed")),
                REF("CampaignId", "Campaign", "Campaign"),
                REF("Pricebook2Id", "Pricebook2", "Pricebook2"),
                PCT("Discount_Rate__c", 5, 2, **C),
                PL("Region__c", ("AMER", "EMEA", "APAC", "LATAM"), **C),
            ],
        )
    )

    objs.append(
        ObjectDef(
            "OpportunityLineItem",
            "00k",
            [
                *system_fields(owner=None),
                REF(
                    "OpportunityId",
                    "Opportunity",
                    "Opportunity",
                    nillable=False,
                    updateable=False,
                    cascade_delete=True,
                ),
                REF("PricebookEntryId", "PricebookEntry", "PricebookEntry", updateable=False),
                REF("Product2Id", "Product2", "Product2", updateable=False),
                S("Name", 376, formula='(SELECT p.Name FROM "Product2" p WHERE p.Id = {t}.Product2Id)', **RO),
                DBL("Quantity", 12, 2, nillable=False),
                CUR("UnitPrice"),
                CUR("ListPrice", **RO),
                CUR("TotalPrice"),
                PCT("Discount", 5, 2),
                D("ServiceDate"),
                S("Description", 255),
            ],
            undeletable=False,
        )
    )

    objs.append(
        ObjectDef(
            "Case",
            "500",
            [
                *system_fields(owner=("User", "Group")),
                REF("MasterRecordId", "Case", "MasterRecord", **RO),
                S(
                    "CaseNumber",
                    30,
                    auto_number=True,
                    name_field=True,
                    nillable=False,
                    defaulted_on_create=True,
                    **RO,
                ),
                REF("AccountId", "Account", "Account"),
                REF("ContactId", "Contact", "Contact"),
                REF("ParentId", "Case", "Parent"),
                S("Subject", 255),
                TA("Description", 32000),
                PL(
                    "Status",
                    ("New", "Working", "Escalated", "Closed"),
                    nillable=False,
                    defaulted_on_create=True,
                ),
                PL("Priority", ("High", "Medium", "Low")),
                PL("Origin", ("Phone", "Email", "Web")),
                PL("Type", ("Mechanical", "Electrical", "Electronic", "Structural", "Other")),
                PL(
                    "Reason", ("Installation", "Equipment Complexity", "Performance", "Breakdown", "Feedback")
                ),
                B("IsClosed", formula="CASE WHEN {t}.Status = 'Closed' THEN 1 ELSE 0 END", **RO),
                DT("ClosedDate", **RO),
                B("IsEscalated"),
                EMAIL("SuppliedEmail"),
                S("SuppliedName", 80),
                INT(
                    "Days_Open__c",
                    calculated=True,
                    **RO,
                    **C,
                    formula="CAST(julianday(sf_now()) - julianday({t}.CreatedDate) AS INTEGER)",
                ),
            ],
            mergeable=True,
        )
    )

    objs.append(
        ObjectDef(
            "CaseComment",
            "00a",
            [
                *system_fields(owner=None),
                REF("ParentId", "Case", "Parent", nillable=False, updateable=False, cascade_delete=True),
                TA("CommentBody", 4000),
                B("IsPublished"),
            ],
        )
    )

    activity = [
        REF("WhoId", ("Contact", "Lead"), "Who"),
        REF("WhatId", ACTIVITY_PARENTS, "What"),
        TA("Description", 32000),
        B("IsArchived", **RO),
    ]
    objs.append(
        ObjectDef(
            "Task",
            "00T",
            [
                *system_fields(owner=("User", "Group")),
                *activity,
                PL("Subject", ("Call", "Send Letter", "Send Quote", "Other"), type="combobox"),
                D("ActivityDate"),
                PL(
                    "Status",
                    ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"),
                    nillable=False,
                    defaulted_on_create=True,
                ),
                PL("Priority", ("High", "Normal", "Low"), nillable=False, defaulted_on_create=True),
                B("IsClosed", formula="CASE WHEN {t}.Status = 'Completed' THEN 1 ELSE 0 END", **RO),
                PL("TaskSubtype", ("Task", "Email", "Call"), defaulted_on_create=True),
                INT("CallDurationInSeconds"),
                DT("ReminderDateTime"),
            ],
        )
    )
    objs.append(
        ObjectDef(
            "Event",
            "00U",
            [
                *system_fields(owner=("User", "Group")),
                *activity,
                PL("Subject", ("Call", "Email", "Meeting", "Send Letter/Quote", "Other"), type="combobox"),
                DT("ActivityDateTime"),
                D("ActivityDate"),
                DT("StartDateTime"),
                DT("EndDateTime"),
                INT("DurationInMinutes"),
                S("Location", 255),
                B("IsAllDayEvent"),
                PL("ShowAs", ("Busy", "OutOfOffice", "Free"), defaulted_on_create=True),
            ],
        )
    )

    objs.append(
        ObjectDef(
            "CampaignMember",
            "00v",
            [
                *system_fields(owner=None),
                REF("CampaignId", "Campaign", "Campaign", nillable=False, updateable=False),
                REF("LeadId", "Lead", "Lead", updateable=False),
                REF("ContactId", "Contact", "Contact", updateable=False),
                PL("Status", ("Planned", "Received", "Responded", "Sent"), defaulted_on_create=True),
                B("HasResponded", **RO),
                D("FirstRespondedDate", **RO),
            ],
            undeletable=False,
        )
    )

    objs.append(
        ObjectDef(
            "Project__c",
            "a00",
            [
                *system_fields(owner=("User", "Group")),
                S("Name", 80, **NAME, label="Project Name"),
                REF("Account__c", "Account", "Account__r", **C),
                REF("Parent_Project__c", "Project__c", "Parent_Project__r", **C),
                PL("Status__c", ("Planned", "Active", "On Hold", "Done"), **C),
                CUR("Budget__c", **C),
                D("Start_Date__c", **C),
                D("End_Date__c", **C),
                PCT("Completion__c", 3, 0, **C),
                TA("Description__c", 32768, **C),
                S("Code__c", 40, external_id=True, unique=True, **C),
                *location("Site_Location__c"),
                S(
                    "Account_Name__c",
                    255,
                    calculated=True,
                    **RO,
                    **C,
                    formula='(SELECT p.Name FROM "Account" p WHERE p.Id = {t}.Account__c)',
                ),
            ],
            label="Project",
            custom=True,
        )
    )

    objs.append(
        ObjectDef(
            "Milestone__c",
            "a01",
            [
                *system_fields(owner=None),
                S("Name", 80, **NAME),
                REF("Project__c", "Project__c", "Project__r", nillable=False, cascade_delete=True, **C),
                D("Due_Date__c", **C),
                TM("Due_Time__c", **C),
                B("Done__c", **C),
                DBL("Weight__c", 6, 2, **C),
            ],
            label="Milestone",
            custom=True,
        )
    )

    objs.append(
        ObjectDef(
            "ContentDocument",
            "069",
            [
                *system_fields(),
                S("Title", 255, **NAME),
                TA("Description", 1000),
                S("FileType", 20, **RO),
                S("FileExtension", 40, **RO),
                INT("ContentSize", **RO),
                REF("LatestPublishedVersionId", "ContentVersion", "LatestPublishedVersion", **RO),
                B("IsArchived", **RO),
                PL("PublishStatus", ("P", "R", "U"), **RO),
            ],
            createable=False,
        )
    )

    objs.append(
        ObjectDef(
            "ContentVersion",
            "068",
            [
                *system_fields(),
                REF("ContentDocumentId", "ContentDocument", "ContentDocument", updateable=False),
                S("Title", 255, **NAME),
                TA("Description", 1000),
                S("PathOnClient", 500, updateable=False),
                B64("VersionData", nillable=False, updateable=False),
                INT("ContentSize", **RO),
                S("FileType", 20, **RO),
                S("FileExtension", 40, **RO),
                S("Checksum", 50, **RO),
                S("VersionNumber", 20, **RO),
                B("IsLatest", **RO),
                S("ReasonForChange", 1000),
                DT("ContentModifiedDate"),
                REF(
                    "FirstPublishLocationId",
                    FILE_PARENTS + ("User",),
                    "FirstPublishLocation",
                    updateable=False,
                ),
                PL("SharingOption", ("A", "R"), defaulted_on_create=True),
            ],
            deletable=False,
            undeletable=False,
        )
    )

    objs.append(
        ObjectDef(
            "ContentDocumentLink",
            "06A",
            [
                FieldDef("Id", "id", length=18, nillable=False, defaulted_on_create=True, **RO),
                REF(
                    "LinkedEntityId",
                    FILE_PARENTS + ("User",),
                    "LinkedEntity",
                    nillable=False,
                    updateable=False,
                ),
                REF(
                    "ContentDocumentId",
                    "ContentDocument",
                    "ContentDocument",
                    nillable=False,
                    updateable=False,
                ),
                PL("ShareType", ("V", "C", "I"), nillable=False, defaulted_on_create=True),
                PL("Visibility", ("AllUsers", "InternalUsers", "SharedUsers"), defaulted_on_create=True),
                B("IsDeleted", **RO),
                DT("SystemModstamp", nillable=False, defaulted_on_create=True, **RO),
            ],
            replicateable=False,
            undeletable=False,
            searchable=False,
        )
    )

    objs.append(
        ObjectDef(
            "Attachment",
            "00P",
            [
                *system_fields(),
                REF("ParentId", FILE_PARENTS, "Parent", nillable=False, updateable=False),
                S("Name", 255, **NAME),
                B("IsPrivate"),
                S("ContentType", 120),
                INT("BodyLength", **RO),
                B64("Body", nillable=False),
                TA("Description", 500),
            ],
            bulk_supported=False,
            searchable=False,
        )
    )

    objs.append(
        ObjectDef(
            "Document",
            "015",
            [
                *system_fields(owner=None),
                REF("FolderId", "User", "Folder", nillable=False),
                S("Name", 255, **NAME),
                S("DeveloperName", 80),
                S("ContentType", 120),
                S("Type", 40),
                B("IsPublic"),
                INT("BodyLength", **RO),
                B64("Body"),
                URL("Url"),
                TA("Description", 255),
                S("Keywords", 255),
                REF("AuthorId", "User", "Author", defaulted_on_create=True),
            ],
        )
    )

    objs.append(
        ObjectDef(
            "Note",
            "002",
            [
                *system_fields(),
                REF("ParentId", FILE_PARENTS, "Parent", nillable=False, updateable=False),
                S("Title", 80, **NAME),
                B("IsPrivate"),
                TA("Body", 32000),
            ],
            searchable=False,
        )
    )

    # --- awkward non-data objects, as real orgs have them --------------------------------------
    objs.append(
        ObjectDef(
            "AccountChangeEvent",
            "1CE",
            [
                FieldDef("Id", "id", length=18, nillable=False, **RO),
                FieldDef("ChangeEventHeader", "json", **RO),
                S("Name", 255, **RO),
            ],
            queryable=False,
            retrieveable=False,
            replicateable=False,
            createable=False,
            updateable=False,
            deletable=False,
            undeletable=False,
            searchable=False,
            layoutable=False,
            has_table=False,
            bulk_supported=False,
        )
    )
    objs.append(
        ObjectDef(
            "AccountFeed",
            "0D5",
            [
                FieldDef("Id", "id", length=18, nillable=False, **RO),
                REF("ParentId", "Account", "Parent", **RO),
                S("Type", 40, **RO),
                TA("Body", 10000, **RO),
                B("IsDeleted", **RO),
                DT("CreatedDate", **RO),
                REF("CreatedById", "User", "CreatedBy", **RO),
                DT("LastModifiedDate", **RO),
                DT("SystemModstamp", **RO),
            ],
            replicateable=False,
            createable=False,
            updateable=False,
            undeletable=False,
            searchable=False,
            layoutable=False,
            bulk_supported=False,
        )
    )
    objs.append(
        ObjectDef(
            "AccountHistory",
            "017",
            [
                FieldDef("Id", "id", length=18, nillable=False, **RO),
                REF("AccountId", "Account", "Account", **RO),
                S("Field", 255, **RO),
                FieldDef("OldValue", "anyType", **RO),
                FieldDef("NewValue", "anyType", **RO),
                B("IsDeleted", **RO),
                DT("CreatedDate", **RO),
                REF("CreatedById", "User", "CreatedBy", **RO),
            ],
            replicateable=False,
            createable=False,
            updateable=False,
            deletable=False,
            undeletable=False,
            searchable=False,
            layoutable=False,
        )
    )
    objs.append(
        ObjectDef(
            "AccountShare",
            "00r",
            [
                FieldDef("Id", "id", length=18, nillable=False, **RO),
                REF("AccountId", "Account", "Account", **RO),
                REF("UserOrGroupId", ("User", "Group"), "UserOrGroup", **RO),
                PL("AccountAccessLevel", ("Read", "Edit", "All"), **RO),
                PL("RowCause", ("Owner", "Manual"), **RO),
                B("IsDeleted", **RO),
                DT("LastModifiedDate", **RO),
                REF("LastModifiedById", "User", "LastModifiedBy", **RO),
            ],
            replicateable=False,
            undeletable=False,
            searchable=False,
            layoutable=False,
        )
    )
    objs.append(
        ObjectDef(
            "RecentlyViewed",
            None,
            [
                FieldDef("Id", "id", length=18, nillable=False, **RO),
                S("Name", 255, **RO),
                S("Type", 40, **RO),
                DT("LastViewedDate", **RO),
            ],
            replicateable=False,
            createable=False,
            updateable=False,
            deletable=False,
            undeletable=False,
            searchable=False,
            layoutable=False,
            bulk_supported=False,
        )
    )
    # the custom object's own history, share and tag objects (empty; null key prefixes)
    objs.append(
        ObjectDef(
            "Project__History",
            None,
            [
                FieldDef("Id", "id", length=18, nillable=False, **RO),
                REF("ParentId", "Project__c", "Parent", **RO),
                S("Field", 255, **RO),
                FieldDef("OldValue", "anyType", **RO),
                FieldDef("NewValue", "anyType", **RO),
                B("IsDeleted", **RO),
                DT("CreatedDate", **RO),
                REF("CreatedById", "User", "CreatedBy", **RO),
            ],
            label="Project History",
            custom=True,
            replicateable=False,
            createable=False,
            updateable=False,
            deletable=False,
            undeletable=False,
            searchable=False,
            layoutable=False,
        )
    )
    objs.append(
        ObjectDef(
            "Project__Share",
            None,
            [
                FieldDef("Id", "id", length=18, nillable=False, **RO),
                REF("ParentId", "Project__c", "Parent", **RO),
                REF("UserOrGroupId", ("User", "Group"), "UserOrGroup", **RO),
                PL("AccessLevel", ("Read", "Edit", "All"), **RO),
                PL("RowCause", ("Owner", "Manual"), **RO),
                B("IsDeleted", **RO),
                DT("LastModifiedDate", **RO),
                REF("LastModifiedById", "User", "LastModifiedBy", **RO),
            ],
            label="Project Share",
            custom=True,
            replicateable=False,
            undeletable=False,
            searchable=False,
            layoutable=False,
        )
    )
    objs.append(
        ObjectDef(
            "Project__Tag",
            None,
            [
                FieldDef("Id", "id", length=18, nillable=False, **RO),
                REF("ItemId", "Project__c", "Item", **RO),
                S("Name", 255, **RO),
                PL("Type", ("Personal", "Public"), **RO),
                B("IsDeleted", **RO),
                DT("CreatedDate", **RO),
                DT("SystemModstamp", **RO),
            ],
            label="Project Tag",
            custom=True,
            replicateable=False,
            undeletable=False,
            searchable=False,
            layoutable=False,
            bulk_supported=False,
        )
    )
    return objs


def with_field(obj: ObjectDef, fdef: FieldDef) -> None:
    """Add ``fdef`` to ``obj`` in place (schema change)."""
    obj.fields.append(fdef)
    obj.reindex()


def field_from_spec(name: str, field_type: str, props: dict) -> FieldDef:
    """Build a custom field from ``add_field`` arguments (validated by the caller)."""
    allowed = {f.name for f in dataclasses.fields(FieldDef)} - {"name", "type"}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in props.items() if k in allowed}
    kw.setdefault("custom", True)
    if field_type in STRING_TYPES and not kw.get("length"):
        kw["length"] = 255
    if field_type in ("double", "currency", "percent") and not kw.get("precision"):
        kw.setdefault("precision", 18)
        kw.setdefault("scale", 2)
    if field_type == "boolean":
        kw.setdefault("nillable", False)
        kw.setdefault("default", False)
    return FieldDef(name, field_type, **kw)
