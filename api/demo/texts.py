"""The words of the demo data: tags, titles, requirements and reasons per kind of event, and the
Faker output drawn once into pools."""

import random
import re
from dataclasses import dataclass

from faker import Faker

from api.events.models import EventType

TYPE_TAGS = {
    EventType.COMPANY_TOUR: ("career", "startups", "networking", "cloud"),
    EventType.MOCK_INTERVIEW: ("interviews", "career", "cv", "backend", "frontend", "data"),
    EventType.GUEST_LECTURE: ("ai", "cloud", "security", "data", "career"),
    EventType.WORKSHOP: ("python", "backend", "frontend", "devops", "design", "mobile", "cv"),
    EventType.NETWORKING: ("networking", "startups", "students", "career"),
    EventType.OTHER: ("students", "career", "startups", "ai", "networking"),
}
TRACKS = (
    "backend engineering",
    "frontend engineering",
    "data science",
    "product management",
    "site reliability",
    "mobile development",
    "UX design",
    "machine learning",
)
TOPICS = (
    "Scaling PostgreSQL to millions of users",
    "What recruiters look for in a junior developer",
    "Security mistakes we all make",
    "From academia to industry",
    "Building accessible web applications",
    "Large language models in production",
    "The economics of cloud computing",
    "Open source as a career path",
)
SKILLS = (
    "Writing a CV that gets read",
    "Git beyond the basics",
    "Your first Kubernetes cluster",
    "Negotiating your first offer",
    "Testing with pytest",
    "System design fundamentals",
    "Personal branding on LinkedIn",
    "Docker for developers",
)
REQUIREMENTS = (
    "Bring a laptop with Python 3.11 or later installed.",
    "Student or alumni ID required at the entrance.",
    "Bring a printed copy of your CV.",
    "Photo ID required by the host's security desk.",
    "Basic Git knowledge.",
)
FEEDBACK = (
    "Please add the agenda and the speaker's background.",
    "The date clashes with the career fair; please move it.",
    "Say what attendees will learn; the description reads like an advert.",
    "Please give the exact room or an online link.",
)
CANCELLATION_REASONS = (
    "The speaker fell ill.",
    "The venue is no longer available.",
    "Too few registrations.",
    None,
)
TIMEZONES = ("UTC", "Europe/Berlin", "Europe/London", "America/New_York", "Asia/Singapore")
DURATIONS_MINUTES = (60, 90, 120, 180, 240)


@dataclass
class Pools:
    """Faker output drawn once and reused: Faker is far slower than random.choice."""

    companies: list[str]
    cities: list[str]
    addresses: list[str]
    paragraphs: list[str]
    phrases: list[str]
    speakers: list[str]
    first_names: list[str]
    last_names: list[str]
    jobs: list[str]

    @classmethod
    def draw(cls, fake: Faker, size: int = 200) -> "Pools":
        return cls(
            companies=[fake.company() for _ in range(size)],
            cities=[fake.city() for _ in range(size)],
            addresses=[f"{fake.street_address()}, {fake.city()}" for _ in range(size)],
            paragraphs=[fake.paragraph(nb_sentences=4) for _ in range(size)],
            phrases=[fake.catch_phrase() for _ in range(size)],
            speakers=[fake.name() for _ in range(size)],
            first_names=[fake.first_name() for _ in range(2 * size)],
            last_names=[fake.last_name() for _ in range(2 * size)],
            jobs=[fake.job() for _ in range(size)],
        )


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower()) or "user"


def title(rng: random.Random, pools: Pools, event_type: EventType) -> str:
    company, city = rng.choice(pools.companies), rng.choice(pools.cities)
    match event_type:
        case EventType.COMPANY_TOUR:
            return f"Company tour: {company}"
        case EventType.MOCK_INTERVIEW:
            return f"Mock interviews: {rng.choice(TRACKS)}"
        case EventType.GUEST_LECTURE:
            return f"Guest lecture: {rng.choice(TOPICS)}, with {rng.choice(pools.speakers)}"
        case EventType.WORKSHOP:
            return f"Workshop: {rng.choice(SKILLS)}"
        case EventType.NETWORKING:
            return rng.choice(
                (
                    f"Networking evening at {company}",
                    f"{city} tech meetup",
                    f"Alumni drinks: {city}",
                )
            )
        case _:
            return rng.choice(
                (
                    f"Career fair {city}",
                    f"Hackathon: {rng.choice(pools.phrases)}",
                    f"Open day at {company}",
                )
            )
