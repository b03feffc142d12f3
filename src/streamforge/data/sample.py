"""The bundled sample database: a small, realistic shop built deterministically on first use.

Why generate instead of shipping a file: a generated SQLite file of this size is a few megabytes, and
building it takes about a second, so the wheel stays small and the content is reviewable as code.
Everything comes from one ``random.Random(SEED)`` and calendar arithmetic, never from the clock or hash
order, so two builds hold the same rows and tests can rely on exact figures.

The content has what a planner needs to show something worth looking at: two years of orders with
growth, yearly seasonality (a Q4 peak, a summer dip), a weekly rhythm and noise; users who sign up over
time and only buy after signing up; sessions whose feature mix shifts towards the API.

Concurrent first use is safe: the database is built into a temporary file in the target folder and
renamed over the final name atomically; a reader only ever sees a complete file.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import tempfile
from bisect import bisect_right
from datetime import date, datetime, timedelta
from pathlib import Path

SEED = 20240101
SAMPLE_VERSION = 1
SAMPLE_FILENAME = f"streamforge-sample-v{SAMPLE_VERSION}.sqlite"

START = date(2024, 1, 1)
END = date(2025, 12, 31)
N_USERS = 2000
N_ORDERS = 30_000
N_SESSIONS = 20_000

REGIONS: dict[str, tuple[str, ...]] = {
    "North America": ("United States", "Canada"),
    "Europe": ("United Kingdom", "Germany", "France", "Spain", "Netherlands", "Sweden", "Italy"),
    "APAC": ("Japan", "Australia", "India", "Singapore", "South Korea"),
    "LATAM": ("Brazil", "Mexico", "Argentina", "Chile", "Colombia"),
}
_REGION_WEIGHTS = {"North America": 0.38, "Europe": 0.32, "APAC": 0.2, "LATAM": 0.1}
PLANS = ("free", "starter", "pro", "enterprise")
_PLAN_WEIGHTS = (0.45, 0.3, 0.18, 0.07)
CHANNELS = ("web", "mobile", "partner")
STATUSES = ("completed", "pending", "cancelled", "refunded")
_STATUS_WEIGHTS = (0.86, 0.03, 0.06, 0.05)
FEATURES = ("Dashboard", "Reports", "Settings", "API")
_FEATURE_MEAN_SECONDS = {"Dashboard": 300.0, "Reports": 540.0, "Settings": 90.0, "API": 45.0}

_PRODUCTS: dict[str, tuple[tuple[str, float], ...]] = {
    "Electronics": (
        ("Aurora Laptop 14", 1299.0),
        ("Aurora Laptop 16", 1699.0),
        ("Nimbus Tablet", 549.0),
        ("Pulse Phone", 899.0),
        ("Echo Speaker", 129.0),
        ("Lumen Monitor 27", 379.0),
        ("Volt Power Bank", 59.0),
        ("Orbit Smartwatch", 249.0),
    ),
    "Software": (
        ("Ledger Pro License", 199.0),
        ("Canvas Studio", 149.0),
        ("Shield Antivirus", 49.0),
        ("Sprint Planner", 99.0),
        ("Vault Backup", 79.0),
        ("Quill Writer", 39.0),
        ("Atlas Maps Pro", 29.0),
        ("Forge IDE", 249.0),
    ),
    "Accessories": (
        ("Glide Mouse", 39.0),
        ("Tactile Keyboard", 119.0),
        ("Halo Headphones", 199.0),
        ("Dock Station", 179.0),
        ("Sleeve 14", 35.0),
        ("USB-C Hub", 49.0),
        ("Webcam HD", 89.0),
        ("Cable Kit", 19.0),
    ),
    "Services": (
        ("Setup Service", 99.0),
        ("Extended Warranty", 149.0),
        ("Data Recovery", 299.0),
        ("Training Session", 199.0),
        ("Priority Support", 399.0),
        ("Cloud Storage 1TB", 99.0),
        ("Device Repair", 129.0),
        ("Consulting Hour", 175.0),
    ),
    "Office": (
        ("Standing Desk", 499.0),
        ("Ergo Chair", 349.0),
        ("Desk Lamp", 45.0),
        ("Notebook Pack", 12.0),
        ("Label Printer", 89.0),
        ("Paper Shredder", 119.0),
        ("Whiteboard", 75.0),
        ("Monitor Arm", 99.0),
    ),
}
_FIRST = (
    "Ava Liam Noah Emma Olivia Mia Lucas Sofia Mateo Yuki Hana Arjun Priya Chen Wei Lea Hugo Nora Finn Ines "
    "Omar Zara Ravi Aiko Diego Lucia Jonas Freya Elena Marco Sara Kai Maya Leo Ana Tom Ida Jin Min Raj"
).split()
_LAST = (
    "Smith Garcia Muller Rossi Tanaka Kim Silva Martin Nguyen Patel Johansson Dubois Lopez Khan Brown "
    "Jensen Costa Novak Sato Park Fischer Moreau Singh Wilson Ortiz Lee Weber Santos Ito Walker"
).split()


def _season(day: date) -> float:
    """Demand multiplier: a Q4 peak, a summer dip, a quieter weekend."""
    yearly = 1.0 + 0.18 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 350) / 365.25)
    weekly = 0.8 if day.weekday() >= 5 else 1.05
    return yearly * weekly


def _growth(day: date) -> float:
    """About 70 % growth over the two years, slightly accelerating."""
    t = (day - START).days / (END - START).days
    return 1.0 + 0.55 * t + 0.15 * t * t


def _days() -> list[date]:
    return [START + timedelta(days=i) for i in range((END - START).days + 1)]


def _spread(rng: random.Random, days: list[date], total: int) -> list[date]:
    """Draw ``total`` days with probability following growth, season and noise, in date order."""
    weights = [_growth(d) * _season(d) * rng.uniform(0.85, 1.15) for d in days]
    return sorted(rng.choices(days, weights=weights, k=total))


def _create(cur: sqlite3.Cursor) -> None:
    cur.executescript(
        """
        CREATE TABLE users (
            user_id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            email TEXT NOT NULL,
            country TEXT NOT NULL,
            region TEXT NOT NULL,
            plan TEXT NOT NULL,
            signup_date DATE NOT NULL,
            is_active BOOLEAN NOT NULL
        );
        CREATE TABLE products (
            product_id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            category TEXT NOT NULL,
            price REAL NOT NULL
        );
        CREATE TABLE orders (
            order_id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(user_id),
            product_id INTEGER NOT NULL REFERENCES products(product_id),
            order_date DATE NOT NULL,
            region TEXT NOT NULL,
            channel TEXT NOT NULL,
            status TEXT NOT NULL,
            quantity INTEGER NOT NULL,
            discount REAL NOT NULL,
            revenue REAL NOT NULL
        );
        CREATE TABLE sessions (
            session_id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(user_id),
            started_at TIMESTAMP NOT NULL,
            feature TEXT NOT NULL,
            duration_seconds INTEGER NOT NULL
        );
        """
    )


def _index(cur: sqlite3.Cursor) -> None:
    # Covering indexes for the planner's most common scans (time buckets of revenue, per-user joins).
    cur.executescript(
        """
        CREATE INDEX ix_orders_date ON orders(order_date, revenue);
        CREATE INDEX ix_orders_user ON orders(user_id);
        CREATE INDEX ix_orders_product ON orders(product_id);
        CREATE INDEX ix_sessions_started ON sessions(started_at);
        CREATE INDEX ix_sessions_user ON sessions(user_id);
        CREATE INDEX ix_users_signup ON users(signup_date);
        ANALYZE;
        """
    )


def _fill(conn: sqlite3.Connection, n_orders: int = N_ORDERS) -> None:
    rng = random.Random(SEED)
    days = _days()
    cur = conn.cursor()
    _create(cur)

    # Users: a founding cohort in January 2024, then sign-ups that follow growth and season.
    founding = [START + timedelta(days=rng.randrange(31)) for _ in range(N_USERS // 8)]
    signups = sorted(founding + _spread(rng, days, N_USERS - len(founding)))
    regions = list(_REGION_WEIGHTS)
    users = []
    user_regions: list[str] = []
    for i, signup in enumerate(signups, start=1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        region = rng.choices(regions, weights=list(_REGION_WEIGHTS.values()))[0]
        country = rng.choice(REGIONS[region])
        plan = rng.choices(PLANS, weights=_PLAN_WEIGHTS)[0]
        active = 1 if rng.random() < 0.78 else 0
        users.append(
            (
                i,
                f"{first} {last}",
                f"{first}.{last}{i}@example.com".lower(),
                country,
                region,
                plan,
                signup.isoformat(),
                active,
            )
        )
        user_regions.append(region)
    cur.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)", users)

    products: list[tuple[int, str, str, float]] = []
    prices: list[float] = []
    for category, items in _PRODUCTS.items():
        for name, price in items:
            products.append((len(products) + 1, name, category, price))
            prices.append(price)
    cur.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", products)
    # Cheap products sell more often.
    product_weights = [1.0 / math.sqrt(p) for p in prices]
    product_ids = list(range(1, len(products) + 1))

    ordinals = [d.toordinal() for d in signups]
    orders = []
    for i, day in enumerate(_spread(rng, days, n_orders), start=1):
        known = bisect_right(ordinals, day.toordinal())
        user = rng.randrange(known) + 1 if known else 1
        product = rng.choices(product_ids, weights=product_weights)[0]
        t = (day - START).days / (END - START).days
        channel = rng.choices(CHANNELS, weights=(0.6 - 0.15 * t, 0.28 + 0.15 * t, 0.12))[0]
        status = rng.choices(STATUSES, weights=_STATUS_WEIGHTS)[0]
        quantity = min(1 + int(rng.expovariate(0.9)), 10)
        discount = rng.choices((0.0, 0.05, 0.1, 0.2), weights=(0.6, 0.2, 0.15, 0.05))[0]
        revenue = round(prices[product - 1] * quantity * (1 - discount), 2)
        orders.append(
            (
                i,
                user,
                product,
                day.isoformat(),
                user_regions[user - 1],
                channel,
                status,
                quantity,
                discount,
                revenue,
            )
        )
    cur.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", orders)

    sessions = []
    features = list(FEATURES)
    for i, day in enumerate(_spread(rng, days, N_SESSIONS), start=1):
        known = bisect_right(ordinals, day.toordinal())
        user = rng.randrange(known) + 1 if known else 1
        t = (day - START).days / (END - START).days
        feature = rng.choices(features, weights=(0.42, 0.25, 0.1, 0.13 + 0.2 * t))[0]
        seconds = int(rng.lognormvariate(math.log(_FEATURE_MEAN_SECONDS[feature]), 0.6)) + 5
        started = datetime(day.year, day.month, day.day) + timedelta(
            seconds=int(rng.triangular(6 * 3600, 23 * 3600, 14 * 3600))
        )
        sessions.append((i, user, started.isoformat(sep=" "), feature, seconds))
    cur.executemany("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)", sessions)
    _index(cur)
    conn.commit()


def write_sample_db(path: Path, *, n_orders: int = N_ORDERS) -> Path:
    """Write the sample database to ``path`` (replacing it atomically) and return the path.

    ``n_orders`` exists for benchmarks that need a bigger fact table with the same shape.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".sample-", suffix=".sqlite", dir=path.parent)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            _fill(conn, n_orders)
        finally:
            conn.close()
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the database is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def ensure_sample_db(data_dir: Path) -> Path:
    """The sample database under ``data_dir``, built on first use; cheap when it already exists."""
    path = Path(data_dir) / SAMPLE_FILENAME
    if not path.exists():
        write_sample_db(path)
    return path
