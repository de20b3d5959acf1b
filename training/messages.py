"""Seeded generators of what agent tools return from people: emails, tickets, chat, calendar, reviews."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from datetime import date, datetime

from faker import Faker

ANCHOR = datetime(2026, 12, 7)  # the latest date a generated message carries
# Each family is a generator: the whole family is a source unit (held out or trained on whole).
OPENERS = [
    "Hi {first},", "Hello {first},", "Dear {name},", "Hey {first} -", "Good morning {first},", "{first},",
    "Hi all,", "Hi team,", "Dear colleagues,", "Hello everyone,", "Morning all,", "To whom it may concern,",
]  # fmt: skip
CLOSERS = [
    "Thanks,\n{me}", "Best,\n{me}", "Cheers,\n{me}", "Kind regards,\n{me}\n{job}, {company}",
    "Thanks in advance!\n{me}", "Regards,\n{me}\n{phone}", "- {me}", "Talk soon,\n{me}",
    "Many thanks,\n{me}\n{company} | {address}", "Best regards,\n{me}\nSent from my phone",
]  # fmt: skip
BODY = [
    "Following up on our call {day}: we agreed to move the {thing} review to {date}. Please update the "
    "shared tracker with your estimates before then, and flag anything that blocks you.",
    "Attached is the revised {thing}. The main changes are in sections 2 and 4; I removed the old pricing "
    "table and added the numbers {person} sent over. Let me know if anything looks off.",
    "Quick reminder that timesheets for {month} are due {day}. If you were out sick, please add the hours "
    "under the absence code so payroll can process them.",
    "The {thing} is ready for sign-off. Please read it before {date} and reply with approve or a list of "
    "changes. If I don't hear back I'll assume no objections.",
    "We're seeing intermittent 502s from the {service} service since the deploy at {time}. I've rolled back "
    "one node; can someone from platform take a look at the load balancer logs?",
    "Can you forward me the signed copy of the {thing}? Legal needs it for the audit, and the version in "
    "the drive is the unsigned draft.",
    "I'll be out of office from {date} to {date2} with limited access to email. For anything urgent, "
    "please contact {person} at {email}.",
    "Please ignore my previous message about the {thing}; I had the wrong version open. The correct "
    "figures are in the spreadsheet I just shared.",
    "Thanks for the quick turnaround on the {thing}. A couple of small notes: the dates in the summary "
    "don't match the appendix, and the chart on page 3 needs axis labels.",
    "The customer at {company} asked whether we can extend the trial by two weeks. I think it's worth it, "
    "they have three teams evaluating. Any objections?",
    "Heads up: the office will be closed {day} for the electrical inspection. Please take your laptops "
    "home and make sure nothing is left on the desks by the windows.",
    "We need to decide by {date} whether to renew the {service} contract. The quote went up 12% and the "
    "support has been slow; I've asked {person} for an alternative.",
    "Your order {order} has shipped and should arrive {day}. You can track it from your account page. "
    "If the package is damaged, reply to this email with a photo.",
    "The interview with the {job} candidate is confirmed for {date} at {time}. Please review the CV and "
    "the take-home exercise beforehand and send your scorecard the same day.",
    "Delete the old {thing} from the shared folder once the new one is approved; people keep opening the "
    "wrong file. I'll send a link to the final version.",
    "Could you run the numbers again with the updated exchange rate? Finance wants the {thing} in euros "
    "and the totals should include the shipping costs this time.",
    "The retro for the {service} incident is {day} at {time}. Please add what you saw to the timeline doc "
    "beforehand, especially anything about the alerting gaps.",
    "As discussed, I've cancelled the duplicate invoice {order}. You should see the credit on next "
    "month's statement. Apologies for the confusion.",
    "Please make sure to complete the security awareness training by {date}. It takes about 20 minutes "
    "and you must pass the quiz at the end to get credit.",
    "I reviewed the pull request for the {service} migration. It looks good overall; please add a test "
    "for the rollback path and update the runbook before merging.",
]
TICKET = [
    "Subject: {problem}\nPriority: {priority}\nReporter: {name} <{email}>\nProduct: {service}\n\n"
    "Steps to reproduce:\n1. Log in as a {job}\n2. Open the {thing} page\n3. Click Export\n\n"
    "Expected: a CSV download\nActual: {problem_detail}\n\nBrowser: {browser}",
    "Ticket {order} - {problem}\nStatus: open | Assignee: {person} | Created {date}\n\n{name} wrote:\n"
    "{problem_detail} This started {day}. We have {n} users affected.\n\nAgent note: asked for logs and "
    "a screenshot; escalated to tier 2.",
    "[{service}] {problem}\n\nCustomer: {company}\nContact: {name}, {phone}\n\nDescription:\n"
    "{problem_detail}\n\nWorkaround: restart the sync from Settings > Integrations. "
    "Customer says it helps for an hour.",
    "Incident {order}\nSeverity: {priority}\nSummary: {problem}\nTimeline:\n- {time} alert fired\n- "
    "{time2} on-call acknowledged\n- mitigated by scaling the worker pool\n\nImpact: {problem_detail}",
]
PROBLEMS = [
    (
        "Export fails with a timeout",
        "the spinner runs for a minute and then an error says 'request timed out'.",
    ),
    ("Password reset email never arrives", "the reset link never shows up, not even in spam."),
    ("Duplicate charges on the invoice", "we were billed twice for the same seats this month."),
    ("Dashboard shows stale numbers", "the totals haven't changed since Monday although new orders came in."),
    ("SSO login loop", "after signing in with Okta the page redirects back to the login screen."),
    ("Mobile app crashes on upload", "the app closes as soon as a photo larger than 10 MB is attached."),
    ("Webhook retries flood our endpoint", "we receive the same event 40 times within a minute."),
    ("Search returns no results for accented names", "searching for 'José' finds nothing, 'Jose' works."),
]
CHAT = [
    "{first}: anyone know why the staging deploy is stuck?\n"
    "{first2}: the migration job is waiting on a lock\n"
    "{first}: ugh. can I kill it?\n{first2}: yes but restart the worker afterwards\n{first}: done, thanks!",
    "{first}: lunch at {time}?\n{first2}: can't, back to back until 2\n{first3}: I'm in\n"
    "{first}: ok {first3} let's go to the ramen place",
    "{first}: PR is up for the {service} fix, would appreciate a review today\n{first2}: on it\n"
    "{first2}: left a few comments, mostly naming. approve once you address them\n{first}: ty",
    "{first}: reminder: standup moved to {time} tomorrow\n{first2}: 👍\n"
    "{first3}: will be 5 min late, dentist",
    "{first}: the customer from {company} is asking again about the SLA credits\n{first2}: forward me the "
    "thread, I'll answer\n{first}: sent. they're pretty upset\n{first2}: understandable, we were down 3h",
    "{first}: does anyone have the wifi password for the 4th floor?\n{first2}: it's on the whiteboard by "
    "the kitchen\n{first}: found it, thanks",
    "{first}: please don't merge anything to main until the release is cut\n{first2}: how long?\n{first}: "
    "an hour tops. I'll post here when it's done",
]
CALENDAR = [
    "Event: {thing} review\nWhen: {date}, {time} - {time2} ({tz})\nWhere: {room}\nOrganizer: {name}\n"
    "Attendees: {first}, {first2}, {first3}\nDescription: Please read the draft beforehand. Agenda: open "
    "questions, budget, next steps.",
    "Invitation: 1:1 {first} / {first2}\n{date} {time}-{time2} ({tz})\nJoin: https://meet.example.com/{slug}\n"
    "Notes: bring the quarterly goals doc.",
    "Reminder: {service} maintenance window\nStarts {date} {time} {tz}, expected duration 2 hours.\n"
    "During the window the API returns 503; retry with backoff.",
]
REVIEWS = [
    "★★★★☆ {title}\nBy {name} on {date}\n{review}",
    "Rating: {stars}/5\n{review}\n— verified buyer, {city}",
    "{stars} stars. {review} Would {verdict}.",
]
REVIEW_TEXT = [
    "Arrived a day early and works as described. The setup instructions were confusing, I had to watch "
    "a video to pair it with my phone.",
    "Battery life is great but the strap broke after two months. Support replaced it without questions.",
    "Don't buy this if you need it for travel, it's heavier than the pictures suggest. Otherwise solid.",
    "Ignore the negative reviews about the noise, mine is quiet. Maybe they fixed it in a newer batch.",
    "The app keeps asking me to log in again. The hardware is fine, the software needs work.",
    "Exactly what I needed for my home office. Follow the manual carefully when mounting the arm.",
]
# Families that only training sees (the held-out side has reviews and inbox JSON of its own).
FORUM = [
    "Re: {problem}\nPosted by {first} on {date}\n\nSame here since the last update. {problem_detail} "
    "Rolling back to the previous version fixed it for me; not ideal but it works until they patch it.",
    "[Solved] {problem}\n\n{first} wrote:\n> {problem_detail}\n\nTurns out the config file had a tab "
    "instead of spaces. Check line 12 of settings.yaml. Marking as solved, thanks everyone!",
    "{title} - anyone tried it?\nI'm thinking of moving our team off spreadsheets. We are {n} people, "
    "mostly remote. Please share what you liked and what annoyed you after a few months.",
    "Question about the {thing}\nHi all, first post. Do I need admin rights to change the {service} "
    "settings, or can a regular member do it? The docs say both in different places.",
]
SMS = [
    "{first}: running 10 min late, start without me\n{first2}: ok, we'll save you a seat\n{first}: thx",
    "Your {company} verification code is {n}{n}. It expires in 10 minutes. Don't share it with anyone.",
    "{first}: can you pick up milk on the way home?\n{first2}: sure, anything else?\n{first}: bread pls",
    "Reminder: your appointment with {name} is on {date} at {time}. Reply C to confirm or R to reschedule.",
    "{first}: flight lands at {time}\n{first2}: I'll be at arrivals, gate B\n{first}: see you then",
]
NOTES = [
    "Meeting notes - {thing} sync, {date}\nAttendees: {first}, {first2}, {first3}\n\nDecisions:\n"
    "- ship the {service} change behind a flag\n- {first2} owns the rollout plan\n\nAction items:\n"
    "- {first}: update the dashboard by {day}\n- {first3}: send the summary to stakeholders",
    "Standup {date}\n{first}: finished the {service} migration, starting on alerts\n{first2}: blocked on "
    "access to the {thing}; asked IT\n{first3}: out tomorrow",
    "1:1 notes ({first} / {first2})\n- feedback on the {thing}: good structure, needs numbers\n- career: "
    "wants to lead the next project\n- follow up: book training budget before {month}",
]
PROMPTS = [
    "Fix the bug in this function:\n\n{code}",
    "Why does this fail?\n\n```\n{log}\n```",
    "Can you explain what this code does, line by line?\n\n{code}",
    "Write unit tests for the following:\n\n```\n{code}\n```",
    "Refactor this to be more readable and keep the behaviour:\n{code}",
    "I get this error when I run the build, what should I change?\n{log}",
    "Review this diff and tell me if anything looks risky:\n\n{code}",
    "Summarise this output for me:\n\n{log}",
    "Add type hints and docstrings to this code:\n```\n{code}\n```",
    "Convert this to TypeScript:\n\n{code}",
    "Here is the CI log. Which test failed and why?\n\n{log}",
    "Translate the comments in this file to English and fix any typos:\n{code}",
    "Please find the performance problem in this code. It is slow on large inputs.\n\n{code}",
    "What does this command output mean? Is anything wrong with my machine?\n\n{log}",
    "Document this module in the README style we use:\n\n{code}",
    "My teammate wrote this; can you make it handle errors properly?\n```\n{code}\n```",
]
SLOTS: dict[str, Sequence[str]] = {
    "thing": ["budget", "contract", "roadmap", "design doc", "vendor proposal", "Q3 plan", "offer letter",
              "onboarding guide", "security policy", "pricing page", "board deck", "hiring plan"],
    "service": ["billing", "checkout", "auth", "search", "notifications", "reporting", "sync", "payments"],
    "day": ["yesterday", "on Monday", "this morning", "last Friday", "tomorrow", "on Thursday", "next week"],
    "priority": ["P1", "P2", "P3", "high", "medium", "low"],
    "browser": ["Chrome 131 on macOS", "Firefox 133 on Windows 11", "Safari 18 on iOS", "Edge 131"],
    "tz": ["UTC", "CET", "PST", "EST", "IST", "JST"],
    "room": ["Room 4.12", "Blue meeting room", "Zoom", "Cafeteria", "Building B, 2nd floor"],
    "verdict": ["buy again", "not recommend", "recommend to friends", "return it if I could"],
}  # fmt: skip


class Filler:
    """Fills a template's slots with people, companies and dates from a seeded Faker."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "en_IN"])
        self.fake.seed_instance(seed)

    def day(self) -> str:
        """A date of 2026 up to ANCHOR: fixed, so that the sets do not depend on the day they are built."""
        return str(self.fake.date_between_dates(date(2026, 1, 1), ANCHOR.date()).strftime("%b %d"))

    def clock(self) -> str:
        return str(self.fake.time("%H:%M", end_datetime=ANCHOR))

    def pick(self, pool: Sequence[str]) -> str:
        return pool[self.rng.randrange(len(pool))]

    def fill(self, template: str, **extra: str) -> str:
        fake, problem = self.fake, PROBLEMS[self.rng.randrange(len(PROBLEMS))]
        values = {name: self.pick(pool) for name, pool in SLOTS.items()}
        values |= {
            "name": fake.name(), "first": fake.first_name(), "first2": fake.first_name(),
            "first3": fake.first_name(), "person": fake.name(), "me": fake.name(), "email": fake.email(),
            "phone": fake.phone_number(), "company": fake.company(), "job": fake.job(),
            "address": fake.address().replace("\n", ", "), "city": fake.city(),
            "date": self.day(), "date2": self.day(),
            "month": fake.month_name(), "time": self.clock(), "time2": self.clock(),
            "order": f"#{self.rng.randint(10000, 999999)}", "n": str(self.rng.randint(2, 400)),
            "slug": fake.slug(), "title": fake.catch_phrase(), "stars": str(self.rng.randint(1, 5)),
            "problem": problem[0], "problem_detail": problem[1], "review": self.pick(REVIEW_TEXT),
        }  # fmt: skip
        return template.format(**(values | extra))


def email(f: Filler, body: Sequence[str]) -> str:
    paragraphs = [f.fill(f.pick(body)) for _ in range(f.rng.randint(1, 3))]
    text = "\n\n".join([f.fill(f.pick(OPENERS)), *paragraphs, f.fill(f.pick(CLOSERS))])
    headers = f.fill(
        "From: {name} <{email}>\nTo: {person} <{email}>\nDate: {date} {time}\nSubject: Re: {thing}\n\n"
    )
    if f.rng.random() < 0.3:
        quoted = "\n".join("> " + line for line in f.fill(f.pick(body)).splitlines())
        text += f"\n\nOn {f.fill('{date}')}, {f.fake.name()} wrote:\n{quoted}"
    return (headers if f.rng.random() < 0.6 else "") + text


def _as_json(f: Filler, make: Callable[[], str], kind: str) -> str:
    """Several items as a tool's JSON result (an inbox search, a ticket query)."""
    items = [
        {"id": f.rng.randint(1000, 99999), "type": kind, "body": make()} for _ in range(f.rng.randint(1, 3))
    ]
    return json.dumps(
        {"results": items, "count": len(items)}, indent=f.rng.choice([None, 2]), ensure_ascii=False
    )


def _half(pool: Sequence[str], heldout: bool) -> list[str]:
    return [t for i, t in enumerate(pool) if (i % 3 == 2) == heldout]


def message_families(heldout: bool) -> dict[str, Callable[[Filler], str]]:
    """The generators of one side: whole families and a disjoint third of every template pool."""
    body, tickets, chats = _half(BODY, heldout), _half(TICKET + CALENDAR, heldout), _half(CHAT, heldout)
    families: dict[str, Callable[[Filler], str]] = {
        "email": lambda f: email(f, body),
        "ticket": lambda f: f.fill(f.pick(tickets)),
        "chat": lambda f: f.fill(f.pick(chats)),
    }
    if heldout:  # families never seen in training at all
        families["review"] = lambda f: f.fill(f.pick(REVIEWS))
        families["inbox-json"] = lambda f: _as_json(f, lambda: email(f, body), "email")
    else:
        families["ticket-json"] = lambda f: _as_json(f, lambda: f.fill(f.pick(tickets)), "ticket")
        families["forum"] = lambda f: f.fill(f.pick(FORUM))
        families["sms"] = lambda f: f.fill(f.pick(SMS))
        families["notes"] = lambda f: f.fill(f.pick(NOTES))
        families["chat-json"] = lambda f: _as_json(f, lambda: f.fill(f.pick(chats)), "message")
    return families


def messages(seed: int, heldout: bool, count: int) -> list[tuple[str, str]]:
    """``count`` messages per family, as (family, text)."""
    f = Filler(seed)
    return [
        (f"gen:{name}", make(f)) for name, make in message_families(heldout).items() for _ in range(count)
    ]


def developer_prompts(
    seed: int, heldout: bool, code: Sequence[str], logs: Sequence[str], count: int
) -> list[str]:
    """A developer's request with code or command output pasted in (disjoint templates per side)."""
    rng = random.Random(seed)
    templates = _half(PROMPTS, heldout)
    out = []
    for _ in range(count):
        template = templates[rng.randrange(len(templates))]
        code_part, log_part = code[rng.randrange(len(code))], logs[rng.randrange(len(logs))]
        out.append(
            template.format(code=code_part[: rng.randint(300, 1100)], log=log_part[: rng.randint(300, 1100)])
        )
    return out
