"""Templates: placeholders with fallbacks, hostile input rendered literally, and SMS segment counting."""

from __future__ import annotations

import pytest

from integration.textback.settings import DEFAULT_SETTINGS
from integration.textback.template import SegmentInfo, fit_to_segments, render, segment_info, template_problems

DAY_ONE = DEFAULT_SETTINGS["templates"]["business_hours"]


def test_day_one_template_reads_well_with_values():
    body = render(DAY_ONE, {"first_name": "Dana", "user_name": "Mike", "business_name": "Acme Plumbing"})
    assert body == "Hi Dana, this is Mike at Acme Plumbing. Sorry we missed your call! What can we help you with?"


def test_day_one_template_reads_well_without_values():
    body = render(DAY_ONE, {})
    assert body == "Hi there, this is the team at our office. Sorry we missed your call! What can we help you with?"


def test_explicit_fallback_wins_over_the_default():
    assert render("Hi {first_name|friend}!", {"first_name": "  "}) == "Hi friend!"
    assert render("Hi {first_name|friend}!", {"first_name": "Bo"}) == "Hi Bo!"


def test_empty_fallback_leaves_no_stray_space_or_comma_gap():
    assert render("Hi {first_name|}, book at {booking_link} today.", {}) == "Hi, book at today."


@pytest.mark.parametrize("hostile", [
    "{__class__}", "{0.__init__}", "{first_name.__class__}", "{% if 1 %}", "{{ 7*7 }}", "{user_name!r}",
    "{business_name:>99999}", "{FIRST_NAME}", "{first_name:__class__}",
])
def test_hostile_template_text_is_rendered_literally(hostile):
    assert render(hostile, {"first_name": "Dana", "user_name": "Mike", "business_name": "Acme"}) == hostile


def test_known_placeholder_inside_braces_substitutes_once():
    assert render("{{first_name}}", {"first_name": "Dana"}) == "{Dana}"
    assert render("${first_name}", {"first_name": "Dana"}) == "$Dana"


@pytest.mark.parametrize("name", ["{user_name}", "{__class__}", "{{ 7*7 }}", "{0.__init__}", "<b>x</b>"])
def test_caller_controlled_values_are_never_expanded(name):
    body = render("Hi {first_name}, this is {user_name}.", {"first_name": name, "user_name": "Mike"})
    assert body == f"Hi {name}, this is Mike."


def test_values_are_single_line_printable_and_bounded():
    body = render("Hi {first_name}!", {"first_name": "Dana\n\r\x07Smith" + "x" * 5000})
    assert "\n" not in body and "\x07" not in body
    assert len(body) <= len("Hi !") + 30


def test_template_problems_point_at_typos():
    assert template_problems(DAY_ONE) == []
    problems = template_problems("Hi {firstname}, {first_name|a|b}")
    assert problems[0].startswith("unknown placeholder {firstname}")
    assert "more than one fallback" in problems[1]
    assert template_problems("Use {0.__init__} and {}") == []  # not placeholder-shaped: literal text
    assert template_problems("{{ name }}")[0].startswith("unknown placeholder {name}")


# --- Segments ---

@pytest.mark.parametrize(("text", "encoding", "units", "segments"), [
    ("", "GSM-7", 0, 0),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("€" * 80, "GSM-7", 160, 1),          # extension characters cost two septets
    ("€" * 81, "GSM-7", 162, 2),
    ("a" * 152 + "€", "GSM-7", 154, 1),   # still one segment: 154 <= 160
    ("é" * 160, "GSM-7", 160, 1),         # é is in the GSM basic set
    ("ж" * 70, "UCS-2", 70, 1),
    ("ж" * 71, "UCS-2", 71, 2),
    ("ж" * 134, "UCS-2", 134, 2),
    ("ж" * 135, "UCS-2", 135, 3),
    ("😀" * 35, "UCS-2", 70, 1),           # emoji are surrogate pairs: two units each
    ("a" * 159 + "😀", "UCS-2", 161, 3),   # one emoji switches everything to UCS-2
])
def test_segment_boundaries(text, encoding, units, segments):
    assert segment_info(text) == SegmentInfo(encoding, units, segments)


def test_extension_character_is_not_split_across_parts():
    # 152 septets then a two-septet "€" would straddle the 153 boundary; it moves to part two.
    text = "a" * 152 + "€" + "a" * 10
    info = segment_info(text)
    assert info.units == 164
    assert info.segments == 2
    assert segment_info("a" * 152 + "€" + "a" * 152).segments == 3  # 152 | 2+151 | 1


def test_surrogate_pair_is_not_split_across_parts():
    assert segment_info("ж" * 66 + "😀" + "ж" * 66).segments == 3  # 66 | 2+65 | 1


def test_fit_to_segments_cuts_at_a_word():
    long = "word " * 100
    cut = fit_to_segments(long, 1)
    assert segment_info(cut).segments == 1
    assert cut.endswith("word...")
    assert fit_to_segments("short", 1) == "short"
    assert segment_info(fit_to_segments("x" * 1000, 2)).segments == 2
