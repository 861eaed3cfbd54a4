"""Examples of the administration schemas in the OpenAPI document (the story of api.examples)."""

# The last 12 UTC months, oldest first, ending with the story's March 2030.
MONTHS = [f"2029-{month:02d}" for month in range(4, 13)] + ["2030-01", "2030-02", "2030-03"]
ACTIVITY = [
    (9, 8, 310, 241),
    (11, 9, 352, 280),
    (7, 7, 298, 236),
    (4, 5, 140, 97),
    (12, 10, 401, 322),
    (15, 13, 466, 371),
    (13, 12, 430, 350),
    (8, 9, 275, 214),
    (10, 8, 329, 266),
    (14, 12, 458, 362),
    (16, 15, 512, 398),
    (6, 4, 171, 24),
]
STATS = {
    "users": {
        "total": 1204,
        "by_role": {"ANONYMOUS": 85, "AUTHENTICATED": 1092, "MANAGER": 24, "ADMIN": 3},
        "verified": 1119,
        "locked": 2,
        "professional": 311,
    },
    "events": {
        "total": 146,
        "by_status": {"PENDING": 6, "PUBLISHED": 118, "REJECTED": 5, "CANCELLED": 17},
    },
    "registrations": {
        "total": 5240,
        "by_status": {
            "CONFIRMED": 3907,
            "OFFERED": 4,
            "WAITLISTED": 112,
            "CANCELLED": 1159,
            "EXPIRED": 58,
        },
    },
    "by_month": [
        {
            "month": month,
            "events_created": created,
            "events_published": published,
            "registrations": registrations,
            "check_ins": check_ins,
        }
        for month, (created, published, registrations, check_ins) in zip(
            MONTHS, ACTIVITY, strict=True
        )
    ],
}
