"""Seeded, deterministic data generator: ``generate(org, scale=N, seed=S)`` fills an empty org with about
N records across the standard and custom objects, with realistic relationships, hostile text and files.

Same seed and scale (and the same clock start) -> byte-identical data. Built for speed: values are
produced column-wise from precomputed pools and inserted with ``executemany`` before indexes are built
(1M records in well under 2 minutes on one core: about 30 s of CPU, measured with
``Org.generate(scale=1_000_000)``; roughly half is SQLite inserting and indexing). Speed-ups must keep
every random draw in its order: tests pin the data of a seed (``test_generated_data_is_pinned_for_a_seed``).
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

from .org import Org, fmt_dt
from .schema import INDUSTRIES, LEAD_SOURCES, STAGES, STRING_TYPES, ObjectDef

FIRST = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Chloé",
    "Zoë",
    "François",
    "Jürgen",
    "Søren",
    "Ólafur",
    "Łukasz",
    "Ngozi",
    "Hiroshi",
    "Mei",
    "Aarav",
    "Fatima",
    "محمد",
    "שרה",
    "Дмитрий",
    "李",
    "O'Brien",
    "Anne-Marie",
    None,
]
LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "O'Connor",
    "D'Angelo",
    "van der Berg",
    "Müller",
    "Nuñez",
    "Østergaard",
    "Nakamura",
    "王",
    "כהן",
    "العربي",
    "Smith, Jr.",
    'The "Boss"',
    "Ng",
]
COMPANY_A = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Pied Piper",
    "Vandelay",
    "Dunder Mifflin",
    "Gringotts",
    "Oscorp",
    "Aperture",
    "Black Mesa",
    "Nakatomi",
    "Monarch",
    "Zenith",
    "Blue Sun",
    "Massive Dynamic",
    "Prestige Worldwide",
]
COMPANY_B = [
    "Corp",
    "Inc.",
    "LLC",
    "GmbH",
    "S.A.",
    "Ltd",
    "Holdings",
    "Group",
    "& Sons",
    "Industries",
    "AG",
    "K.K.",
    "Partners, LLP",
    "Labs",
    "Systems",
]
HOSTILE = [
    'Quote "inside" value',
    "Comma, separated, value",
    "Line one\nLine two\nLine three",
    "Tab\tseparated",
    "CRLF line\r\nnext",
    "Emoji 🚀🔥 party 🎉",
    "RTL עברית ועוד",
    "RTL عربي مع أرقام 123",
    "Mixed ‮reversed‬ text",
    "Leading and trailing spaces  ",
    "Backslash \\ and slash /",
    "Semicolon; pipe | caret ^",
    "Null-looking: null",
    "#N/A",
    "=SUM(A1:A2)",
    "Ünïcödé ñ ç ß ø å",
    "中文字符和日本語のテキスト",
    "'single quotes'",
    '""',
    'a,b\n"c"',
]
CITIES = [
    ("San Francisco", "CA", "94105", "United States", 37.7897, -122.3942),
    ("New York", "NY", "10001", "United States", 40.7506, -73.9972),
    ("London", None, "EC1A 1BB", "United Kingdom", 51.5202, -0.0977),
    ("Paris", None, "75002", "France", 48.8686, 2.3406),
    ("Tokyo", None, "100-0005", "Japan", 35.6812, 139.7671),
    ("São Paulo", "SP", "01310-100", "Brazil", -23.5613, -46.6565),
    ("Tel Aviv", None, "6100000", "Israel", 32.0853, 34.7818),
    ("Zürich", "ZH", "8001", "Switzerland", 47.3769, 8.5417),
    ("Austin", "TX", "73301", "United States", 30.2672, -97.7431),
]
STREETS = [
    "1 Market St",
    "350 Fifth Avenue\nSuite 4000",
    "10 Downing Street",
    "5 Rue de la Paix",
    "1-9-1 Marunouchi",
    "Av. Paulista, 1578",
    "Rothschild Blvd 22",
    "Bahnhofstrasse 1",
    '123 "Main" St, Unit 5',
]
WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
]
FILE_EXT = ["pdf", "txt", "csv", "png", "docx", "xlsx", "json", "bin"]


def _shares(scale: int) -> dict[str, int]:
    s = max(scale, 50)
    return {
        "User": max(3, min(2000, s // 200)),
        "Group": max(2, s // 5000 + 2),
        "Account": s * 15 // 100,
        "AccountHistory": s * 2 // 100,
        "Contact": s * 22 // 100,
        "Lead": s * 8 // 100,
        "Campaign": max(2, s // 1000),
        "Product2": max(5, s // 500),
        "Opportunity": s * 10 // 100,
        "OpportunityLineItem": s * 7 // 100,
        "CampaignMember": s * 3 // 100,
        "Case": s * 7 // 100,
        "CaseComment": s * 4 // 100,
        "Task": s * 8 // 100,
        "Event": s * 3 // 100,
        "Project__c": s * 2 // 100,
        "Milestone__c": s * 4 // 100,
        "ContentVersion": max(4, s // 500),
        "Attachment": max(2, s // 1000),
        "Document": max(1, s // 2000),
        "Note": max(2, s // 500),
    }


class _Gen:
    def __init__(self, org: Org, scale: int, seed: int):
        self.org = org
        self.rng = random.Random(seed)
        self.scale = scale
        self.now = org.clock.now().replace(microsecond=0)
        self.start = self.now - timedelta(days=730)
        self._start_day = self.start.replace(hour=0, minute=0, second=0)
        self._start_sod = int((self.start - self._start_day).total_seconds())
        self._days: dict[int, str] = {}
        self.conn = org._conn
        self.ids: dict[str, list[str]] = {}
        self.user = org.user_id
        self.counts = _shares(scale)
        self.total = 0
        self.blob_bytes = 0
        self._sentences = [
            " ".join(self.rng.choices(WORDS, k=self.rng.randint(4, 30))).capitalize() + "."
            for _ in range(400)
        ]

    # pools ------------------------------------------------------------------------------------
    def stamps(self, n: int) -> tuple[list[str], list[str]]:
        """Sorted CreatedDate values and LastModifiedDate values (>= created, <= now)."""
        rng = self.rng
        span = int((self.now - self.start).total_seconds())
        rand = rng.random
        secs = sorted(int(rand() * span) for _ in range(n))
        fmt = self.fmt_secs
        created = [fmt(s) for s in secs]
        modified = [
            c if rand() < 0.6 else fmt(s + int(rand() * (span - s)))
            for s, c in zip(secs, created, strict=True)
        ]
        return created, modified

    def fmt_secs(self, s: int) -> str:
        """fmt_dt(self.start + s seconds), fast (cached day prefixes and times of day)."""
        day, rem = divmod(s + self._start_sod, 86400)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = self._days[day] = (self._start_day + timedelta(days=day)).strftime("%Y-%m-%dT")
        return prefix + _TIMES_OF_DAY[rem]

    def text(self, n: int, hostile: float = 0.05, null: float = 0.1) -> list[str | None]:
        rng = self.rng
        out: list[str | None] = []
        sentences = self._sentences
        for _ in range(n):
            r = rng.random()
            if r < null:
                out.append(None)
            elif r < null + hostile:
                out.append(rng.choice(HOSTILE))
            else:
                out.append(rng.choice(sentences))
        return out

    def long_text(self, n: int) -> list[str | None]:
        """Long text areas: mostly short or null, a few very long (bounded count)."""
        vals = self.text(n, hostile=0.05, null=0.4)
        for i in self.rng.sample(range(n), min(n, 3 + n // 2000)) if n else []:
            vals[i] = ("Very long value. " + " ".join(self.rng.choices(self._sentences, k=400)))[:31000]
        return vals

    def pick(self, pool: list, n: int, null: float = 0.0) -> list:
        if not pool:
            return [None] * n
        vals = self.rng.choices(pool, k=n)
        if null:
            rng = self.rng
            vals = [None if rng.random() < null else v for v in vals]
        return vals

    def self_refs(self, ids: list[str], share: float) -> list[str | None]:
        """A self-lookup column: a ``share`` of records point at an earlier record."""
        rng = self.rng
        return [ids[rng.randrange(i)] if i and rng.random() < share else None for i in range(len(ids))]

    def owners(self, n: int, *, groups: bool = False) -> list[str]:
        pool = self.ids["User"] + (self.ids.get("Group", [])[:2] if groups else [])
        return self.rng.choices(pool, k=n)

    def money(self, n: int, lo: float, hi: float, null: float = 0.1) -> list[float | None]:
        rng = self.rng
        return [None if rng.random() < null else round(rng.uniform(lo, hi), 2) for _ in range(n)]

    def ints(self, n: int, lo: int, hi: int, null: float = 0.1) -> list[int | None]:
        rng = self.rng
        return [None if rng.random() < null else rng.randint(lo, hi) for _ in range(n)]

    def dates(self, n: int, lo_days: int, hi_days: int, null: float = 0.2) -> list[str | None]:
        rng = self.rng
        today = self.now.date()
        text = [(today + timedelta(days=d)).isoformat() for d in range(lo_days, hi_days + 1)]
        rand, randint = rng.random, rng.randint
        return [None if rand() < null else text[randint(lo_days, hi_days) - lo_days] for _ in range(n)]

    def bools(self, n: int, p: float = 0.5) -> list[int]:
        rng = self.rng
        return [1 if rng.random() < p else 0 for _ in range(n)]

    # insertion ---------------------------------------------------------------------------------
    def insert(self, name: str, n: int, cols: dict[str, list]) -> list[str]:
        obj = self.org.objects[name.lower()]
        if n <= 0:
            self.ids[name] = []
            return []
        cols = dict(cols)
        ids = cols.pop("Id", None) or self.org.ids.new_ids(obj.key_prefix, n)  # type: ignore[arg-type]
        cols["Id"] = ids
        if obj.has("CreatedDate") and "CreatedDate" not in cols:
            created, modified = self.stamps(n)
            cols["CreatedDate"] = created
            if obj.has("LastModifiedDate"):
                cols["LastModifiedDate"] = modified
            if obj.has("SystemModstamp"):
                cols["SystemModstamp"] = modified
        elif obj.has("SystemModstamp") and "SystemModstamp" not in cols:
            cols["SystemModstamp"] = self.stamps(n)[1]
        if obj.has("CreatedById"):
            cols.setdefault("CreatedById", [self.user] * n)
        if obj.has("LastModifiedById"):
            cols.setdefault("LastModifiedById", [self.user] * n)
        if obj.has("IsDeleted"):
            cols.setdefault("IsDeleted", [0] * n)
        if obj.has("OwnerId") and "OwnerId" not in cols:
            cols["OwnerId"] = self.owners(n, groups=obj.field("OwnerId").polymorphic)  # type: ignore[union-attr]
        # booleans are NOT NULL: default any omitted one
        for f in obj.stored_fields():
            if f.type == "boolean" and f.name not in cols:
                cols[f.name] = [1 if f.default else 0] * n
        _fit_lengths(obj, cols)
        names = list(cols)
        for k in names:
            assert len(cols[k]) == n, (name, k, len(cols[k]), n)
        sql = (
            f'INSERT INTO "{obj.name}" ({", ".join(f"{chr(34)}{k}{chr(34)}" for k in names)}) '
            f"VALUES ({', '.join('?' * len(names))})"
        )
        self.conn.executemany(sql, zip(*(cols[k] for k in names), strict=True))
        self.ids[name] = ids
        self.total += n
        return ids

    def address(self, prefix: str, n: int, null: float = 0.15) -> dict[str, list]:
        rng = self.rng
        out: dict[str, list] = {
            f"{prefix}{k}": []
            for k in (
                "Street",
                "City",
                "State",
                "PostalCode",
                "Country",
                "Latitude",
                "Longitude",
                "GeocodeAccuracy",
            )
        }
        street, city_, state_, postal_, country_, lat_, lon_, acc_ = out.values()
        rand, choice, uniform = rng.random, rng.choice, rng.uniform
        for _ in range(n):  # the draws' order is part of the seed's contract: keep it
            if rand() < null:
                for v in out.values():
                    v.append(None)
                continue
            city, state, postal, country, lat, lon = choice(CITIES)
            geo = rand() < 0.5
            street.append(choice(STREETS))
            city_.append(city)
            state_.append(state)
            postal_.append(postal)
            country_.append(country)
            if geo:
                lat_.append(round(lat + uniform(-0.05, 0.05), 6))
                lon_.append(round(lon + uniform(-0.05, 0.05), 6))
                acc_.append("Address")
            else:
                lat_.append(None)
                lon_.append(None)
                acc_.append(None)
        return out

    # objects ------------------------------------------------------------------------------------
    def run(self) -> dict[str, int]:
        c = self.counts
        rng = self.rng
        self.ids["User"] = [self.user]
        n = c["User"] - 1
        first = self.pick([f for f in FIRST if f], n)
        last = self.pick(LAST, n)
        self.insert(
            "User",
            n,
            {
                "Username": [f"user{i}@{self.org.org_id.lower()}.emulator.test" for i in range(n)],
                "FirstName": first,
                "LastName": last,
                "Email": [f"user{i}@example.com" for i in range(n)],
                "Alias": [f"u{i}"[:8] for i in range(n)],
                "IsActive": self.bools(n, 0.9),
                "Title": self.pick(["CEO", "VP Sales", "AE", "SDR", "Support Agent"], n),
                "Department": self.pick(["Sales", "Support", "Marketing", None], n),
                "UserType": ["Standard"] * n,
                "TimeZoneSidKey": self.pick(["America/Los_Angeles", "Europe/London", "Asia/Tokyo"], n),
                "LocaleSidKey": ["en_US"] * n,
                "LanguageLocaleKey": ["en_US"] * n,
                "EmailEncodingKey": ["UTF-8"] * n,
            },
        )
        self.ids["User"] = [self.user] + self.ids["User"]
        n = c["Group"]
        self.insert(
            "Group",
            n,
            {
                "Name": [f"Queue {i}" for i in range(n)],
                "DeveloperName": [f"Queue_{i}" for i in range(n)],
                "Type": ["Queue"] * n,
            },
        )
        # accounts (a tenth have a parent account)
        n = c["Account"]
        names = [
            f"{rng.choice(COMPANY_A)} {rng.choice(COMPANY_B)} {i}"
            if rng.random() > 0.03
            else rng.choice(HOSTILE) + f" {i}"
            for i in range(n)
        ]
        cols = {
            "Name": names,
            "Type": self.pick(["Prospect", "Customer - Direct", "Customer - Channel", "Other"], n, 0.1),
            **self.address("Billing", n),
            **self.address("Shipping", n, 0.5),
            "Phone": [
                f"+1 415 555 {rng.randint(0, 9999):04d}" if rng.random() < 0.8 else None for _ in range(n)
            ],
            "Website": [f"https://www.example{i}.com" if rng.random() < 0.6 else None for i in range(n)],
            "Industry": self.pick(list(INDUSTRIES), n, 0.1),
            "AnnualRevenue": self.money(n, 1e4, 5e9),
            "NumberOfEmployees": self.ints(n, 1, 200000),
            "Description": self.long_text(n),
            "Rating": self.pick(["Hot", "Warm", "Cold"], n, 0.3),
            "AccountSource": self.pick(list(LEAD_SOURCES), n, 0.3),
            "External_Id__c": [f"EXT-{i:08d}" if rng.random() < 0.9 else None for i in range(n)],
            "Customer_Since__c": self.dates(n, -3000, 0),
            "Tier__c": self.pick(["Bronze", "Silver", "Gold", "Platinum"], n, 0.2),
            "Active__c": self.bools(n, 0.7),
            "Discount__c": self.money(n, 0, 40, 0.5),
            "Support_Hours_Start__c": self.pick(["08:00:00.000Z", "09:30:00.000Z", None], n),
            "Notes_Long__c": self.long_text(n),
            "Headquarters__Latitude__s": [],
            "Headquarters__Longitude__s": [],
        }
        for _ in range(n):
            if rng.random() < 0.3:
                cols["Headquarters__Latitude__s"].append(round(rng.uniform(-60, 70), 6))
                cols["Headquarters__Longitude__s"].append(round(rng.uniform(-170, 170), 6))
            else:
                cols["Headquarters__Latitude__s"].append(None)
                cols["Headquarters__Longitude__s"].append(None)
        # self-lookup: later accounts point at earlier ones
        cols["Id"] = pre = self.org.ids.new_ids("001", n)
        cols["ParentId"] = self.self_refs(pre, 0.1)
        accounts = self.insert("Account", n, cols)
        # field history: read-only, no SystemModstamp (incremental backups must go by CreatedDate)
        k = c["AccountHistory"]
        fields = self.pick(["Name", "Industry", "Rating", "AnnualRevenue", "created"], k)
        self.insert(
            "AccountHistory",
            k,
            {
                "AccountId": self.pick(accounts, k),
                "Field": fields,
                "OldValue": [
                    None if f == "created" else self.rng.choice(HOSTILE[:6] + ["Warm", "1000"])
                    for f in fields
                ],
                "NewValue": [
                    None if f == "created" else self.rng.choice(["Hot", "Energy", "5000", "Acme"])
                    for f in fields
                ],
                "CreatedDate": sorted(self.stamps(k)[1]),
            },
        )
        # contacts
        n = c["Contact"]
        pre = self.org.ids.new_ids("003", n)
        contacts = self.insert(
            "Contact",
            n,
            {
                "Id": pre,
                "ReportsToId": self.self_refs(pre, 0.05),
                "AccountId": self.pick(accounts, n, 0.05),
                "FirstName": self.pick(FIRST, n),
                "LastName": self.pick(LAST, n),
                "Salutation": self.pick(["Mr.", "Ms.", "Dr.", None], n),
                **self.address("Mailing", n, 0.3),
                "Email": [f"c{i}@example.org" if rng.random() < 0.85 else None for i in range(n)],
                "Phone": [
                    f"(555) {rng.randint(100, 999)}-{rng.randint(0, 9999):04d}"
                    if rng.random() < 0.7
                    else None
                    for _ in range(n)
                ],
                "Title": self.text(n, 0.02, 0.4),
                "Birthdate": self.dates(n, -25000, -7000, 0.6),
                "LeadSource": self.pick(list(LEAD_SOURCES), n, 0.3),
                "Description": self.long_text(n),
                "HasOptedOutOfEmail": self.bools(n, 0.1),
                "Legacy_Id__c": [
                    f"L-{i // 2 if i % 50 == 0 else i}" if rng.random() < 0.5 else None for i in range(n)
                ],
                "Languages__c": self.pick(
                    ["English", "English;French", "German;Spanish;Japanese", "Arabic;Hebrew", None], n
                ),
            },
        )
        n = c["Lead"]
        self.insert(
            "Lead",
            n,
            {
                "FirstName": self.pick(FIRST, n),
                "LastName": self.pick(LAST, n),
                "Company": [f"{rng.choice(COMPANY_A)} {rng.choice(COMPANY_B)}" for _ in range(n)],
                "Email": [f"lead{i}@example.net" for i in range(n)],
                **self.address("", n, 0.4),
                "Status": self.pick(
                    ["Open - Not Contacted", "Working - Contacted", "Closed - Not Converted"], n
                ),
                "Industry": self.pick(list(INDUSTRIES), n, 0.3),
                "LeadSource": self.pick(list(LEAD_SOURCES), n, 0.2),
                "AnnualRevenue": self.money(n, 1e4, 1e8, 0.5),
                "NumberOfEmployees": self.ints(n, 1, 5000, 0.5),
                "Description": self.text(n, 0.05, 0.5),
            },
        )
        n = c["Campaign"]
        campaigns = self.insert(
            "Campaign",
            n,
            {
                "Name": [
                    f"Campaign {i} — {rng.choice(['Spring', 'Summer', 'Fall', 'Winter'])}" for i in range(n)
                ],
                "Type": self.pick(["Conference", "Webinar", "Email"], n),
                "Status": self.pick(["Planned", "Completed"], n),
                "StartDate": self.dates(n, -400, 0, 0),
                "EndDate": self.dates(n, 0, 200, 0.2),
                "BudgetedCost": self.money(n, 1e3, 1e6),
                "IsActive": self.bools(n, 0.5),
            },
        )
        n = c["Product2"]
        products = self.insert(
            "Product2",
            n,
            {
                "Name": [
                    f"{rng.choice(['Widget', 'Gadget', 'Service Plan', 'License', 'Gizmo'])} {i}"
                    for i in range(n)
                ],
                "ProductCode": [f"P-{i:05d}" for i in range(n)],
                "IsActive": self.bools(n, 0.9),
                "Family": self.pick(["Hardware", "Software", "Services", "Training"], n, 0.1),
                "StockKeepingUnit": [f"SKU-{i:06d}" for i in range(n)],
                "Description": self.text(n, 0.05, 0.3),
            },
        )
        books = self.insert(
            "Pricebook2",
            2,
            {"Name": ["Standard Price Book", "Partner Price Book"], "IsActive": [1, 1], "IsStandard": [1, 0]},
        )
        n = len(products) * 2
        entries = self.insert(
            "PricebookEntry",
            n,
            {
                "Pricebook2Id": [books[i % 2] for i in range(n)],
                "Product2Id": [products[i // 2] for i in range(n)],
                "UnitPrice": self.money(n, 10, 50000, 0),
                "IsActive": [1] * n,
                "UseStandardPrice": [0] * n,
            },
        )
        entry_product = dict(zip(entries, [products[i // 2] for i in range(len(entries))], strict=True))
        n = c["Opportunity"]
        stages = self.pick(list(STAGES), n)
        opps = self.insert(
            "Opportunity",
            n,
            {
                "AccountId": self.pick(accounts, n, 0.03),
                "Name": [f"Deal {i}" for i in range(n)],
                "StageName": stages,
                "Amount": self.money(n, 500, 2e6),
                "Probability": self.ints(n, 0, 100, 0.1),
                "CloseDate": self.dates(n, -300, 300, 0),
                "Type": self.pick(["New Customer", "Existing Customer - Upgrade"], n),
                "LeadSource": self.pick(list(LEAD_SOURCES), n, 0.3),
                "CampaignId": self.pick(campaigns, n, 0.7),
                "Pricebook2Id": self.pick(books, n, 0.3),
                "Description": self.text(n, 0.05, 0.5),
                "Discount_Rate__c": self.money(n, 0, 30, 0.6),
                "Region__c": self.pick(["AMER", "EMEA", "APAC", "LATAM"], n, 0.1),
                "NextStep": self.text(n, 0.05, 0.5),
            },
        )
        n = c["OpportunityLineItem"]
        pbe = self.pick(entries, n)
        self.insert(
            "OpportunityLineItem",
            n,
            {
                "OpportunityId": self.pick(opps, n),
                "PricebookEntryId": pbe,
                "Product2Id": [entry_product[e] for e in pbe],
                "Quantity": [float(rng.randint(1, 50)) for _ in range(n)],
                "UnitPrice": self.money(n, 10, 50000, 0),
                "ServiceDate": self.dates(n, -100, 100, 0.5),
                "Description": self.text(n, 0.03, 0.6),
            },
        )
        n = c["CampaignMember"]
        contacts_for = self.pick(contacts, n)
        self.insert(
            "CampaignMember",
            n,
            {
                "CampaignId": self.pick(campaigns, n),
                "ContactId": contacts_for,
                "Status": self.pick(["Sent", "Responded"], n),
                "HasResponded": self.bools(n, 0.3),
            },
        )
        n = c["Case"]
        cases = self.insert(
            "Case",
            n,
            {
                "CaseNumber": [f"{1000 + i + 1:08d}" for i in range(n)],
                "AccountId": self.pick(accounts, n, 0.1),
                "ContactId": self.pick(contacts, n, 0.2),
                "Subject": self.text(n, 0.05, 0.05),
                "Description": self.long_text(n),
                "Status": self.pick(["New", "Working", "Escalated", "Closed"], n),
                "Priority": self.pick(["High", "Medium", "Low"], n),
                "Origin": self.pick(["Phone", "Email", "Web"], n),
                "IsEscalated": self.bools(n, 0.05),
                "SuppliedEmail": [None] * n,
            },
        )
        self.org.ids.counters["#case"] = 1000 + n
        n = c["CaseComment"]
        self.insert(
            "CaseComment",
            n,
            {
                "ParentId": self.pick(cases, n),
                "CommentBody": self.text(n, 0.1, 0.0),
                "IsPublished": self.bools(n, 0.5),
            },
        )
        n = c["Project__c"]
        pre = self.org.ids.new_ids("a00", n)
        projects = self.insert(
            "Project__c",
            n,
            {
                "Id": pre,
                "Parent_Project__c": self.self_refs(pre, 0.15),
                "Name": [f"Project {i}" for i in range(n)],
                "Account__c": self.pick(accounts, n, 0.1),
                "Status__c": self.pick(["Planned", "Active", "On Hold", "Done"], n),
                "Budget__c": self.money(n, 1e3, 5e6),
                "Start_Date__c": self.dates(n, -500, 0),
                "End_Date__c": self.dates(n, 0, 500),
                "Completion__c": self.ints(n, 0, 100),
                "Description__c": self.long_text(n),
                "Code__c": [f"PRJ-{i:06d}" for i in range(n)],
                "Site_Location__Latitude__s": self.money(n, -60, 70, 0.5),
                "Site_Location__Longitude__s": self.money(n, -170, 170, 0.5),
            },
        )
        n = c["Milestone__c"]
        self.insert(
            "Milestone__c",
            n,
            {
                "Name": [f"M{i}" for i in range(n)],
                "Project__c": self.pick(projects, n),
                "Due_Date__c": self.dates(n, -100, 200),
                "Due_Time__c": self.pick(["17:00:00.000Z", "09:00:00.000Z", None], n),
                "Done__c": self.bools(n, 0.4),
                "Weight__c": self.money(n, 0, 10, 0.3),
            },
        )
        what_pool = accounts + opps + cases + projects
        who_pool = contacts
        for name in ("Task", "Event"):
            n = c[name]
            cols = {
                "WhoId": self.pick(who_pool, n, 0.3),
                "WhatId": self.pick(what_pool, n, 0.2),
                "Description": self.text(n, 0.05, 0.5),
            }
            if name == "Task":
                # activities closed over a year ago are archived: only queryAll returns them
                archived = self.bools(n, 0.03)
                if n:
                    archived[0] = 1  # the oldest task is always archived, so small orgs have one
                cols["IsArchived"] = archived
                cols.update(
                    Subject=self.pick(["Call", "Send Letter", "Send Quote", "Follow up ✉️"], n),
                    ActivityDate=self.dates(n, -200, 60),
                    CallDurationInSeconds=self.ints(n, 0, 3600, 0.7),
                    Status=self.pick(["Not Started", "In Progress", "Completed"], n),
                    Priority=self.pick(["High", "Normal", "Low"], n),
                    TaskSubtype=self.pick(["Task", "Call"], n),
                )
            else:
                starts = [self.start + timedelta(minutes=rng.randrange(1_000_000)) for _ in range(n)]
                dur = [rng.choice([15, 30, 60, 120]) for _ in range(n)]
                cols.update(
                    Subject=self.pick(["Meeting", "Call", "Demo"], n),
                    ActivityDateTime=[fmt_dt(s) for s in starts],
                    StartDateTime=[fmt_dt(s) for s in starts],
                    EndDateTime=[fmt_dt(s + timedelta(minutes=d)) for s, d in zip(starts, dur, strict=True)],
                    ActivityDate=[s.date().isoformat() for s in starts],
                    DurationInMinutes=dur,
                    Location=self.pick(["Zoom", "HQ, Room 1", 'Café "Le Monde"', None], n),
                    ShowAs=["Busy"] * n,
                )
            self.insert(name, n, cols)
        self.files(accounts, contacts, opps, cases, projects)
        return {k: len(v) for k, v in self.ids.items()}

    def blob(self, i: int, size: int, ext: str) -> bytes:
        if ext in ("txt", "csv", "json"):
            chunk = (" ".join(self._sentences[i % 50 : i % 50 + 5]) + "\n").encode()
            return (chunk * (size // max(1, len(chunk)) + 1))[:size]
        return self.rng.randbytes(size)

    def sizes(self, n: int) -> list[int]:
        rng = self.rng
        large = min(n, self.scale // 100_000 + (1 if self.scale >= 2000 else 0))
        out = []
        for i in range(n):
            if i < large:
                out.append(rng.randint(1_000_000, 4_000_000))
            elif rng.random() < 0.06:
                out.append(rng.randint(20_000, 300_000))
            else:
                out.append(int(10 ** rng.uniform(0.5, 4.3)))
        rng.shuffle(out)
        if self.scale < 2000:  # keep small orgs small
            out = [min(s, 400_000) for s in out]
        return out

    def files(self, accounts, contacts, opps, cases, projects) -> None:
        rng = self.rng
        c = self.counts
        parents = accounts + contacts + opps + cases + projects
        n = c["ContentVersion"]
        sizes = self.sizes(n)
        exts = self.pick(FILE_EXT, n)
        datas = [self.blob(i, sizes[i], exts[i]) for i in range(n)]
        self.blob_bytes += sum(sizes)
        titles = [
            f"File {i} {rng.choice(['report', 'contract', 'photo', 'notes, final', 'données'])}"
            for i in range(n)
        ]
        created, modified = self.stamps(n)
        doc_ids = self.org.ids.new_ids("069", n)
        ver_ids = self.org.ids.new_ids("068", n)
        ftypes = [
            {
                "pdf": "PDF",
                "txt": "TEXT",
                "csv": "CSV",
                "png": "PNG",
                "docx": "WORD_X",
                "xlsx": "EXCEL_X",
                "json": "JSON",
            }.get(e, "UNKNOWN")
            for e in exts
        ]
        owners = self.owners(n)
        doc_cols = {
            "Title": titles,
            "FileType": ftypes,
            "FileExtension": exts,
            "ContentSize": sizes,
            "LatestPublishedVersionId": ver_ids,
            "PublishStatus": ["P"] * n,
            "OwnerId": owners,
            "CreatedDate": created,
            "LastModifiedDate": modified,
            "SystemModstamp": modified,
        }
        self._insert_with_ids("ContentDocument", doc_ids, doc_cols)
        loc = self.pick(parents, n)
        self._insert_with_ids(
            "ContentVersion",
            ver_ids,
            {
                "ContentDocumentId": doc_ids,
                "Title": titles,
                "PathOnClient": [f"{t}.{e}" for t, e in zip(titles, exts, strict=True)],
                "ContentSize": sizes,
                "FileType": ftypes,
                "FileExtension": exts,
                "Checksum": [hashlib.md5(d).hexdigest() for d in datas],  # noqa: S324 - what Salesforce uses
                "VersionNumber": ["1"] * n,
                "IsLatest": [1] * n,
                "FirstPublishLocationId": loc,
                "OwnerId": owners,
                "CreatedDate": created,
                "LastModifiedDate": modified,
                "SystemModstamp": modified,
                "ContentModifiedDate": created,
                "SharingOption": ["A"] * n,
            },
        )
        self.conn.executemany(
            "INSERT INTO _blobs (record_id, field, data) VALUES (?, 'VersionData', ?)",
            zip(ver_ids, datas, strict=True),
        )
        link_ids = self.org.ids.new_ids("06A", n)
        self._insert_with_ids(
            "ContentDocumentLink",
            link_ids,
            {
                "LinkedEntityId": loc,
                "ContentDocumentId": doc_ids,
                "ShareType": ["V"] * n,
                "Visibility": ["AllUsers"] * n,
                "SystemModstamp": created,
            },
        )
        for name, field in (("Attachment", "ParentId"), ("Note", "ParentId")):
            n = c[name]
            if name == "Attachment":
                sz = [min(s, 200_000) for s in self.sizes(n)]
                bodies = [self.blob(i, sz[i], "txt" if i % 2 else "bin") for i in range(n)]
                self.blob_bytes += sum(sz)
                ids = self.insert(
                    name,
                    n,
                    {
                        field: self.pick(parents, n),
                        "Name": [f"attachment-{i}.dat" for i in range(n)],
                        "ContentType": ["application/octet-stream"] * n,
                        "BodyLength": sz,
                        "IsPrivate": self.bools(n, 0.1),
                    },
                )
                self.conn.executemany(
                    "INSERT INTO _blobs (record_id, field, data) VALUES (?, 'Body', ?)",
                    zip(ids, bodies, strict=True),
                )
            else:
                self.insert(
                    name,
                    n,
                    {
                        field: self.pick(parents, n),
                        "Title": [f"Note {i}" for i in range(n)],
                        "Body": self.text(n, 0.2, 0.1),
                    },
                )
        n = c["Document"]
        sz = [min(s, 200_000) for s in self.sizes(n)]
        bodies = [self.blob(i, sz[i], "txt") for i in range(n)]
        self.blob_bytes += sum(sz)
        ids = self.insert(
            "Document",
            n,
            {
                "FolderId": self.pick(self.ids["User"], n),
                "Name": [f"Doc {i}" for i in range(n)],
                "DeveloperName": [f"Doc_{i}" for i in range(n)],
                "ContentType": ["text/plain"] * n,
                "Type": ["txt"] * n,
                "BodyLength": sz,
                "AuthorId": [self.user] * n,
                "IsPublic": self.bools(n, 0.5),
            },
        )
        self.conn.executemany(
            "INSERT INTO _blobs (record_id, field, data) VALUES (?, 'Body', ?)", zip(ids, bodies, strict=True)
        )

    def _insert_with_ids(self, name: str, ids: list[str], cols: dict[str, list]) -> None:
        obj = self.org.objects[name.lower()]
        n = len(ids)
        cols = {"Id": ids, **cols}
        for k, v in (("CreatedById", self.user), ("LastModifiedById", self.user), ("IsDeleted", 0)):
            if obj.has(k):
                cols.setdefault(k, [v] * n)
        for f in obj.stored_fields():
            if f.type == "boolean" and f.name not in cols:
                cols[f.name] = [1 if f.default else 0] * n
        _fit_lengths(obj, cols)
        names = list(cols)
        sql = (
            f'INSERT INTO "{obj.name}" ({", ".join(f"{chr(34)}{k}{chr(34)}" for k in names)}) '
            f"VALUES ({', '.join('?' * len(names))})"
        )
        self.conn.executemany(sql, zip(*(cols[k] for k in names), strict=True))
        self.ids[name] = ids
        self.total += n


def _fit_lengths(obj: ObjectDef, cols: dict[str, list]) -> None:
    """Shorten, in place, every text value longer than its field's describe ``length`` -- the org's own
    create() would refuse it with STRING_TOO_LONG, so a restore of generated data would fail. Cuts at a
    word boundary where one is near; values that fit (all the hostile samples) are left untouched. Draws
    no random numbers, so the rest of a seed's data is unchanged."""
    for name, vals in cols.items():
        f = obj.field(name)
        if f is None or f.type not in STRING_TYPES or not f.length:
            continue
        limit = f.length
        if any(isinstance(v, str) and len(v) > limit for v in vals):
            cols[name] = [_cut(v, limit) if isinstance(v, str) and len(v) > limit else v for v in vals]


def _cut(value: str, limit: int) -> str:
    """``value`` shortened to at most ``limit`` characters, at the last space of the second half if any."""
    head = value[:limit]
    space = head.rfind(" ")
    if space > limit // 2:
        head = head[:space]
    return head.rstrip(" ,;")


_TIMES_OF_DAY = [f"{h:02d}:{m:02d}:{sec:02d}.000Z" for h in range(24) for m in range(60) for sec in range(60)]


def generate(org: Org, *, scale: int = 500, seed: int = 1) -> dict[str, int]:
    """Fill ``org`` (freshly created, empty apart from its API user) with about ``scale`` records.
    Returns the number of records created per object."""
    conn = org._conn
    with org._lock:
        conn.execute("PRAGMA synchronous=OFF")
        # drop secondary indexes while loading; rebuilt below
        idx = conn.execute(
            "SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
            "AND tbl_name NOT LIKE '\\_%' ESCAPE '\\'"
        ).fetchall()
        with org.transaction():
            for (name,) in idx:
                conn.execute(f'DROP INDEX "{name}"')
            gen = _Gen(org, scale, seed)
            counts = gen.run()
            for obj in org.objects.values():
                if obj.has_table:
                    org._create_indexes(obj)
            org._meta_set(
                "generated",
                {"scale": scale, "seed": seed, "counts": counts, "generated_at": fmt_dt(datetime.now(UTC))},
            )
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("ANALYZE")
    return counts
