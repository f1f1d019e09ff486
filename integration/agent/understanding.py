"""What a caller's text says, by rules and `dateparser`: no guesswork, and nothing the policy must trust blindly.

`understand(text, now=..., zone=...)` returns a Heard: the intent (book, quote, emergency, human, wrong number,
stop, decline, a yes, a thank-you, a question, or unknown), an emergency kind, a numbered choice ("2", "the
second one"), and a When (a day or range of days, a part of the day, an exact clock time) in the caller's zone.
The policy decides what any of it means given what was offered; the booking is always re-checked against the
calendar before anything is booked.

Typos and shorthand people text ("tmrw", "thurs", "2nite", "pls") are normalised first. Dates are found by
rules (weekday names, "tomorrow", "next week", "March 10", "3/10", "the 14th", "in 2 days") and the phrase is
resolved by dateparser relative to now in the caller's zone, preferring the future.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dateparser

from integration.textback.opt_out import is_opt_out

__all__ = [
    "AFFIRM", "BOOK", "DECLINE", "EMERGENCY", "HUMAN", "INTENTS", "NO", "QUESTION", "QUOTE", "STOP", "THANKS",
    "UNKNOWN", "WRONG_NUMBER", "Heard", "When", "normalise", "understand",
]

BOOK, QUOTE, EMERGENCY, HUMAN, WRONG_NUMBER, STOP = "book", "quote", "emergency", "human", "wrong_number", "stop"
DECLINE, NO, AFFIRM, THANKS, QUESTION, UNKNOWN = "decline", "no", "affirm", "thanks", "question", "unknown"
INTENTS = (BOOK, QUOTE, EMERGENCY, HUMAN, WRONG_NUMBER, STOP, DECLINE, NO, AFFIRM, THANKS, QUESTION, UNKNOWN)
EMERGENCIES = ("gas", "water", "heat")

_MORNING, _AFTERNOON, _EVENING = (time(0), time(12)), (time(12), time(17)), (time(17), time(23, 59))


@dataclass(frozen=True)
class When:
    """A time the caller asks for, in their zone: days [first_day, last_day], and a clock window or exact time."""

    first_day: date | None = None
    last_day: date | None = None
    earliest: time | None = None
    latest: time | None = None
    exact: time | None = None
    # "later" / "anything after those": after the latest slot offered.
    later: bool = False

    @property
    def is_empty(self) -> bool:
        return self == When()

    def matches(self, moment: datetime) -> bool:
        """Does a slot start (in the caller's zone) fit this request?"""
        day, clock = moment.date(), moment.time().replace(second=0, microsecond=0)
        if self.first_day and day < self.first_day:
            return False
        if self.last_day and day > self.last_day:
            return False
        if self.exact is not None:
            return clock == self.exact
        if self.earliest is not None and clock < self.earliest:
            return False
        return not (self.latest is not None and clock >= self.latest)

    def describe(self) -> str:
        """ "Fri morning", "Tue Mar 10 at 3:00pm", "next week": for texts and notes."""
        parts = []
        if self.first_day and self.first_day == self.last_day:
            parts.append(f"{self.first_day:%a %b} {self.first_day.day}")
        elif self.first_day:
            parts.append(f"{self.first_day:%b} {self.first_day.day}-{self.last_day:%b} {self.last_day.day}"
                         if self.last_day else f"from {self.first_day:%b} {self.first_day.day}")
        if self.exact is not None:
            parts.append(f"at {clock_text(self.exact)}")
        elif (self.earliest, self.latest) == _MORNING:
            parts.append("morning")
        elif (self.earliest, self.latest) == _AFTERNOON:
            parts.append("afternoon")
        elif (self.earliest, self.latest) == _EVENING:
            parts.append("evening")
        elif self.earliest is not None:
            parts.append(f"after {clock_text(self.earliest)}")
        elif self.latest is not None:
            parts.append(f"before {clock_text(self.latest)}")
        return " ".join(parts) or "then"


@dataclass(frozen=True)
class Heard:
    """One text, understood."""

    intent: str
    emergency: str | None = None
    # 1-based position among the offered slots; -1 for "the last one".
    choice: int | None = None
    when: When | None = None
    # "none of those", "something else": the caller turns the offered slots down.
    rejects: bool = False
    # The caller asked what it costs (answered without a price, whatever else they said).
    asks_price: bool = False
    # The text describes the job (a leak, a furnace, a roof...).
    mentions_job: bool = False

    def with_intent(self, intent: str) -> Heard:
        return replace(self, intent=intent)


def clock_text(moment: time) -> str:
    """ "9am", "1:30pm", "noon"."""
    if moment == time(12):
        return "noon"
    hour = moment.hour % 12 or 12
    suffix = "am" if moment.hour < 12 else "pm"
    return f"{hour}{suffix}" if moment.minute == 0 else f"{hour}:{moment.minute:02d}{suffix}"


# --- Normalising ---

_TYPOS = {
    r"tmrw|tmrow|tmr|tmrrw|tomoro|tomorow|tommorow|tommorrow|tomorrrow|tomorroww|2morrow|2moro|2morow|tomm?or?row":
        "tomorrow",
    r"2nite|tonite|2night": "tonight",
    r"2day|tday": "today",
    r"mon": "monday", r"tue|tues": "tuesday", r"wed|weds|wednsday|wensday|wednes": "wednesday",
    r"thu|thur|thurs|thrus|thursdy": "thursday", r"fri|frday|fridy": "friday", r"sat": "saturday",
    r"sun": "sunday", r"wk": "week", r"nxt": "next", r"mornin|morn": "morning",
    r"aftn|afternon|arvo": "afternoon", r"eve": "evening", r"pls|plz|plse": "please", r"u": "you", r"ur": "your",
    r"thx|thanx|tx|ty": "thanks", r"ya|yea|yeah|yep|yup|yes+|yess|yas|ye": "yes", r"k|kk|okk|oky|okey": "ok",
    r"ppl": "people", r"sum1": "someone", r"some1": "someone", r"any1": "anyone", r"asap": "asap",
}
_TYPO_RE = [(re.compile(rf"\b(?:{pattern})\b"), word) for pattern, word in _TYPOS.items()]


def normalise(text: str) -> str:
    """Lower case, one space, common SMS shorthand and typos spelled out."""
    line = " ".join(str(text or "").lower().replace("\u2019", "'").split())
    for pattern, word in _TYPO_RE:
        line = pattern.sub(word, line)
    return line


# --- Intent rules (each a regular expression on the normalised text) ---

def _any(*patterns: str) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


_GAS = _any(r"\bgas\b.{0,30}\b(?:smell|smells|smelling|leak|leaking|odou?r)", r"\bsmell(?:s|ing)?\b.{0,20}\bgas\b",
            r"\brotten eggs?\b", r"\bgas leak")
_WATER = _any(r"water everywhere", r"\bflood(?:ed|ing)?\b", r"burst(?:ed)? (?:pipe|line)", r"pipe (?:burst|broke)",
              r"water (?:is )?(?:pouring|gushing|spraying|coming through the ceiling)", r"water all over",
              r"\bgushing\b", r"ceiling (?:is )?(?:leaking|caving|collapsing)", r"sewage (?:backing|everywhere)")
_NO_HEAT = _any(r"\bno heat\b", r"\bheat(?:ing)? (?:is |'s )?(?:out|off|dead|not working|stopped)",
                r"\bheat (?:isn't|is not|wont|won't) (?:work|come on|turn on)",
                r"\bfurnace (?:is |'s )?(?:out|dead|died|not working|broke|broken|quit|stopped)",
                r"\bfurnace (?:isn't|is not|wont|won't|doesn't|does not)", r"\bfreezing in (?:here|the house)")
_HUMAN = _any(r"\bhuman\b", r"\breal person\b", r"\b(?:talk|speak) (?:to|with) (?:a |an |someone|somebody|some|"
              r"the|your|a real)", r"\bcall me\b", r"\bgive me a call\b", r"\bphone me\b", r"\bcall (?:me )?back\b",
              r"\b(?:can|could) (?:someone|somebody|you) call\b", r"\bmanager\b", r"\boperator\b",
              r"\brepresentative\b", r"\b(?:are you|is this) (?:a )?(?:bot|robot|automated|ai|machine)\b",
              r"\ba person\b", r"\bnot a bot\b")
_WRONG = _any(r"wrong (?:number|#|person)", r"\b(?:i )?(?:didn't|did not|never) call", r"\bwho (?:dis|this)\b$",
              r"\bnot me\b", r"\byou have the wrong\b", r"\bdon't know (?:you|who)", r"\bno idea who\b")
_DECLINE = _any(r"\bno thanks\b", r"\bno thank you\b", r"\bnever ?mind\b", r"\bnot interested\b",
                r"\b(?:found|got|hired|have) (?:someone|somebody|a guy|another)", r"\balready (?:fixed|handled|got)",
                r"\bno need\b", r"\bwe're good\b", r"\bwe are good\b", r"\ball set\b", r"\bdon't need\b",
                r"\bnot anymore\b", r"\bcancel (?:it|that)\b", r"\bfixed it\b", r"\bno longer need")
_NO = re.compile(r"^(?:no|nope|nah|no no|not really|negative)[.!]*$")
_AFFIRM = re.compile(r"^(?:yes|ok|sure|sounds good|that works|works|perfect|great|good|book it|do it|please do|"
                     r"please|alright|all right|fine|absolutely|definitely|yes please|ok please|ok yes|yes ok|"
                     r"that's fine|that one works|works for me|go ahead|let's do it|lets do it|cool|👍)"
                     r"(?: please| thanks| yes| ok| sure)*[.!]*$")
_THANKS = re.compile(r"^(?:ok |great |perfect |awesome |cool )?(?:thanks|thank you|appreciate it|much appreciated|"
                     r"cheers)(?: so much| a lot| very much)?(?: you)?[.!]*$")
_PRICE = _any(r"\bhow much\b", r"\bprices?\b", r"\bpricing\b", r"\bcost(?:s)?\b", r"\bquote\b", r"\bestimate\b",
              r"\bcharge\b", r"\bfees?\b", r"\brates?\b", r"\$", r"\bbudget\b", r"\bexpensive\b")
_JOB = _any(r"\bleak(?:s|ing|y)?\b", r"\bclog(?:ged|s)?\b", r"\bdrain", r"\btoilet", r"\bwater heater", r"\bfurnace",
            r"\bhvac\b", r"\ba/?c\b", r"\bair condition", r"\broof", r"\bshingle", r"\bgutter", r"\bfaucet",
            r"\bsink\b", r"\bpipes?\b", r"\bsewer", r"\bheater\b", r"\bboiler", r"\bthermostat", r"\bduct",
            r"\bbroken\b", r"\bbroke\b", r"\bnot working\b", r"\bstopped working\b", r"\bwon't (?:turn|start|drain)",
            r"\bplumb", r"\bdripping\b", r"\brepair\b", r"\binstall", r"\breplace", r"\bfix\b", r"\bgarbage disposal",
            r"\bdisposal\b", r"\bshower\b", r"\btub\b", r"\bhot water\b", r"\bsump pump", r"\bwater softener",
            r"\bvent\b", r"\bcondenser\b", r"\bheat pump", r"\bmold\b", r"\bstorm damage", r"\bhail\b",
            r"\bno (?:hot )?water\b", r"\bbacked up\b", r"\bbacking up\b", r"\brunning\b", r"\bnoise\b",
            r"\btune.?up\b", r"\bmaintenance\b", r"\binspection\b", r"\bcheck (?:it|out|on)\b", r"\blook at\b",
            r"\bservice\b", r"\bjob\b", r"\bwork done\b")
_VISIT = _any(r"\bcome\b", r"\bcoming\b", r"\bcome out\b", r"\bsend (?:someone|somebody|a)", r"\bbook", r"\bschedul",
              r"\bappointment\b", r"\bappt\b", r"\bavailab", r"\bopenings?\b", r"\bvisit\b", r"\bfix\b", r"\brepair",
              r"\bstop by\b", r"\bswing by\b", r"\bneed\b", r"\bwant\b", r"\bget (?:someone|somebody)",
              r"\bwhen can\b", r"\bsoon\b", r"\basap\b", r"\bhelp\b", r"\btoday\b", r"\btomorrow\b",
              r"\bthis week\b", r"\bnext week\b", r"\bearliest\b", r"\bfree\b", r"\bslot", r"\btime\b", r"\bday\b")
_REJECT = _any(r"\bnone\b", r"\bneither\b", r"\bnot (?:those|these|them|any)", r"(?:those|these) (?:don't|dont|do not|"
               r"won't|wont|will not) work", r"\bcan't do (?:those|these|any|them|that)", r"\bdon't work\b",
               r"\bsomething else\b", r"\bother (?:times?|days?|options?)\b", r"\banother (?:time|day)\b",
               r"\bany(?:thing)? (?:later|else)\b", r"\blater (?:that|in the|one|time|day|please)?\b",
               r"\bdifferent (?:time|day)\b", r"\bno good\b", r"\bbusy (?:then|those)", r"\bwork(?:ing)? then\b")
_LATER = _any(r"\blater\b", r"\banything after\b")

# --- Choices ---

# "2 works, what's the price?": a slot number first, then more.
_LEADING_CHOICE = re.compile(r"^(?:option |number |#)?([1-3])(?:st|nd|rd)?\s*(?:works|is good|is fine|please|pls|ok|"
                             r"one)?\s*[,.;!-]\s*\S")
# "Perfect, 2" / "ok 3": agreeing words before the number.
_AGREEING = re.compile(r"^(?:yes|ok|sure|perfect|great|cool|awesome|sounds good|good|alright|thanks)[,!.]*\s+")
_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "last": -1}
_ORDINAL_RE = re.compile(r"\b(first|1st|second|2nd|third|3rd|last)\b(?! (?:of|week|thing))")
_NUMBER_CHOICE = re.compile(
    r"^(?:(?:i'll|i will|let's|lets|i'd like|i would like|i want|i choose|i pick|go with|take|do|book|option|opt|"
    r"number|no\.?|#|choice|slot|the)\s*)*#?\s*([1-9])\s*(?:st|nd|rd|th)?"
    r"(?:\s*(?:one|option|please|works|is good|is fine|is great|is perfect|thanks|sounds good|for me|then|ok|"
    r"pls|yes|would be great|would work|works best|is best|[.!)]))*\s*$")

# --- Times ---

_CLOCK = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*(a\.?m\.?|p\.?m\.?|am|pm|a|p)\b")
_AT_HOUR = re.compile(r"\b(?:at|around|about|by|@)\s*(\d{1,2})(?::(\d{2}))?\b(?!\s*(?:st|nd|rd|th|/|-))")
_HH_MM = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_OCLOCK = re.compile(r"\b(\d{1,2})\s*o'?clock\b")
_BARE_HOUR = re.compile(r"^(?:the\s+)?(\d{1,2})(?::(\d{2}))?\s*(?:one|works|is good|is fine|please|ok|then)?[.!]*$")
_AFTER = re.compile(r"\b(?:after|from|anytime after|any time after)\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm)?\b")
_BEFORE = re.compile(r"\b(?:before|by|no later than)\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm)?\b")

# --- Days ---

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|"
           "apr|jun|jul|aug|sep|sept|oct|nov|dec")
_WEEKDAY_RE = re.compile(r"\b(?:(next|this|coming|on)\s+)?(" + "|".join(_WEEKDAYS) + r")s?\b")
_MONTH_DAY = re.compile(rf"\b(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?"
                        rf"(?:{_MONTHS})\b")
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?\b")
_NTH = re.compile(r"\b(?:the|on the)\s+(\d{1,2})(?:st|nd|rd|th)\b")
_IN_DAYS = re.compile(r"\bin (?:(\d|a|one|two|three|a couple of|a couple|a few)\s+)(days?|weeks?)\b")


def understand(text: str, *, now: datetime, zone: ZoneInfo) -> Heard:
    """Understand one text of the caller's, `now` being the moment it is read (aware) and `zone` the caller's."""
    line = normalise(text)
    if is_opt_out(text) or is_opt_out(line):
        return Heard(STOP)
    local_now = now.astimezone(zone)
    when = _when(line, local_now)
    asks_price = bool(_PRICE.search(line))
    mentions_job = bool(_JOB.search(line))
    common = {"when": when, "asks_price": asks_price, "mentions_job": mentions_job}
    emergency = ("gas" if _GAS.search(line) else "water" if _WATER.search(line)
                 else "heat" if _NO_HEAT.search(line) else None)
    if emergency:
        return Heard(EMERGENCY, emergency=emergency, **common)
    if _WRONG.search(line):
        return Heard(WRONG_NUMBER, **common)
    if _HUMAN.search(line):
        return Heard(HUMAN, **common)
    if _DECLINE.search(line):
        return Heard(DECLINE, **common)
    choice = _choice(line)
    rejects = bool(_REJECT.search(line)) and choice is None
    if rejects and when is None and _LATER.search(line):
        when = When(later=True)
    common.update(when=when, choice=choice, rejects=rejects)
    if choice is not None:
        return Heard(BOOK, **common)
    if _NO.match(line):
        return Heard(NO, **common)
    if _THANKS.match(line):
        return Heard(THANKS, **common)
    if _AFFIRM.match(line):
        return Heard(AFFIRM, **common)
    if rejects:
        return Heard(BOOK, **common)
    if when is not None or _VISIT.search(line):
        if "?" in line and not mentions_job and when is None and not _VISIT.search(line):
            return Heard(QUESTION, **common)
        return Heard(BOOK, **common)
    if asks_price:
        return Heard(QUOTE, **common)
    if mentions_job:
        # "Do you do tankless heaters?" is a question we cannot answer; "my sink is clogged" is a job.
        return Heard(QUESTION if line.endswith("?") and _is_yes_no_question(line) else BOOK, **common)
    if "?" in line:
        return Heard(QUESTION, **common)
    return Heard(UNKNOWN, **common)


def _is_yes_no_question(line: str) -> bool:
    return bool(re.match(r"^(?:do|does|are|is|can|could|will|would|have|has|did)\s+(?:you|y'all|your|u)\b", line)) \
        and not _VISIT.search(line)


def _choice(line: str) -> int | None:
    """ "2", "#2", "option 2", "the second one", "last one"; None when it names no single position."""
    line = _AGREEING.sub("", line)
    match = _NUMBER_CHOICE.match(line) or _LEADING_CHOICE.match(line)
    if match:
        return int(match.group(1))
    found = {_ORDINALS[m.group(1)] for m in _ORDINAL_RE.finditer(line)}
    if len(found) == 1 and not _NTH.search(line) and not _MONTH_DAY.search(line):
        return found.pop()
    return None


# --- When ---

def _when(line: str, now: datetime) -> When | None:
    """The day(s) and clock the text asks for, in the caller's zone (`now` is local); None when it names none."""
    first, last = _days(line, now)
    earliest, latest, exact = _clock(line)
    when = When(first_day=first, last_day=last if last is not None else first, earliest=earliest, latest=latest,
                exact=exact)
    if when.is_empty:
        return None
    if when.first_day is None and when.exact is not None and when.exact <= now.time():
        # "3pm" after 3pm today means a later day's 3pm (tomorrow's, or an offered day's).
        return replace(when, first_day=now.date() + timedelta(days=1), last_day=None)
    if when.first_day is None and (when.exact is not None or when.earliest or when.latest):
        # A time with no day: the next such time (today if it is still ahead), any day after.
        return replace(when, first_day=now.date(), last_day=None)
    return when


def _days(line: str, now: datetime) -> tuple[date | None, date | None]:
    today = now.date()
    if re.search(r"\bday after tomorrow\b", line):
        return today + timedelta(days=2), None
    if re.search(r"\b(?:today|tonight|this (?:morning|afternoon|evening)|right now|now)\b", line):
        return today, None
    if re.search(r"\btomorrow\b", line):
        return today + timedelta(days=1), None
    if re.search(r"\bnext week\b", line):
        start = today + timedelta(days=7 - today.weekday())
        return start, start + timedelta(days=6)
    if re.search(r"\bthis week\b", line):
        return today, today + timedelta(days=6 - today.weekday())
    if re.search(r"\b(?:this |the |next )?weekend\b", line):
        saturday = today + timedelta(days=(5 - today.weekday()) % 7)
        return saturday, saturday + timedelta(days=1)
    match = _WEEKDAY_RE.search(line)
    if match:
        wanted = _WEEKDAYS.index(match.group(2))
        ahead = (wanted - today.weekday()) % 7
        if ahead == 0 and match.group(1) != "this":
            # "Monday" said on a Monday is next Monday: today would be "today".
            ahead = 7
        return today + timedelta(days=ahead), None
    for pattern in (_MONTH_DAY, _IN_DAYS, _NTH):
        found = pattern.search(line)
        if found:
            parsed = _parse_day(found.group(0), now)
            if parsed is not None:
                return parsed, None
    numeric = _NUMERIC_DATE.search(line)
    if numeric:
        month, day = int(numeric.group(1)), int(numeric.group(2))
        if 1 <= month <= 12 and 1 <= day <= 31:
            parsed = _parse_day(numeric.group(0), now)
            if parsed is not None:
                return parsed, None
    return None, None


def _parse_day(phrase: str, now: datetime) -> date | None:
    """A date phrase resolved by dateparser relative to `now` (local, future preferred)."""
    phrase = re.sub(r"^(?:on )?the ", "", phrase.replace("a couple of", "2").replace("a couple", "2")
                    .replace("a few", "3"))
    parsed = dateparser.parse(phrase, languages=["en"], settings={
        "RELATIVE_BASE": now.replace(tzinfo=None), "PREFER_DATES_FROM": "future", "DATE_ORDER": "MDY",
        "PREFER_DAY_OF_MONTH": "first", "RETURN_AS_TIMEZONE_AWARE": False, "STRICT_PARSING": False})
    if parsed is None:
        return None
    day = parsed.date()
    if day < now.date():
        # "3/2" in December is next year's March.
        try:
            day = day.replace(year=day.year + 1)
        except ValueError:
            return None
    return day if day <= now.date() + timedelta(days=60) else None


def _hour(raw_hour: str, raw_minute: str | None, meridiem: str | None) -> time | None:
    hour, minute = int(raw_hour), int(raw_minute or 0)
    if minute > 59 or hour > 23:
        return None
    if meridiem:
        marker = meridiem.replace(".", "")[0]
        if hour < 1 or hour > 12:
            return None
        hour = hour % 12 + (12 if marker == "p" else 0)
    elif hour <= 6:
        hour += 12  # "at 3" from a contractor's caller is 3pm; nobody books a 3am visit
    return time(hour, minute)


def _clock(line: str) -> tuple[time | None, time | None, time | None]:
    """(earliest, latest, exact) clock times the text names."""
    earliest = latest = exact = None
    if re.search(r"\b(?:morning|first thing|early)\b", line) or re.search(r"\bbefore (?:noon|lunch)\b", line):
        earliest, latest = _MORNING
    elif re.search(r"\b(?:afternoon|after lunch|midday)\b", line):
        earliest, latest = _AFTERNOON
    elif re.search(r"\b(?:evening|tonight|after work|end of (?:the )?day)\b", line):
        earliest, latest = _EVENING
    after, before = _AFTER.search(line), _BEFORE.search(line)
    if after:
        earliest = _hour(after.group(1), after.group(2), after.group(3))
    if before and not re.search(r"\bby (?:the|then)\b", line):
        latest = _hour(before.group(1), before.group(2), before.group(3))
    if re.search(r"\bnoon\b", line) and not re.search(r"\b(?:before|after) noon\b", line):
        exact = time(12)
    for pattern in (_CLOCK, _HH_MM, _OCLOCK):
        match = pattern.search(line)
        in_window = (after and match and match.start() == after.start(1)) or \
            (before and match and match.start() == before.start(1))
        if match and not in_window:
            groups = match.groups() + (None,) * (3 - len(match.groups()))
            exact = _hour(groups[0], groups[1] if pattern is not _OCLOCK else None,
                          groups[2] if pattern is _CLOCK else None) or exact
            break
    else:
        match = _AT_HOUR.search(line) or _BARE_HOUR.match(line)
        if match and (int(match.group(1)) > 3 or _AT_HOUR.search(line)):
            exact = _hour(match.group(1), match.group(2), None) or exact
    if exact is not None and (after or before):
        # "after 3pm": a window, not an exact time.
        exact = None if (after and exact == earliest) or (before and exact == latest) else exact
    return earliest, latest, exact
