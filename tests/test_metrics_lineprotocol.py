"""Line protocol encoding: examples, and round-trip / no-raw-newline properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.errors import LineProtocolError
from metrics.lineprotocol import encode_point, encode_points, escape_key, escape_measurement, parse_line
from metrics.schema import Point


def test_cadvisor_point_encodes_as_cadvisor_writes_it():
    p = Point("cpu_usage_total", {"machine": "host-1", "container_name": "web.1", "app_id": "/prod/web"},
              {"value": 123456789}, 1_700_000_000_000_000_000)
    assert encode_point(p) == ("cpu_usage_total,app_id=/prod/web,container_name=web.1,machine=host-1 "
                               "value=123456789i 1700000000000000000")


@pytest.mark.parametrize("name, expected", [
    ("cpu usage", "cpu\\ usage"), ("a,b", "a\\,b"), ("a=b", "a=b"), ("back\\slash", "back\\\\slash"),
    ("new\nline", "new\\nline"),
])
def test_measurement_escaping(name, expected):
    assert escape_measurement(name) == expected


@pytest.mark.parametrize("text, expected", [
    ("a b", "a\\ b"), ("a,b", "a\\,b"), ("a=b", "a\\=b"), ('say "hi"', 'say\\ "hi"'), ("tab\there", "tab\\there"),
])
def test_key_escaping(text, expected):
    assert escape_key(text) == expected


@pytest.mark.parametrize("value, text", [
    (5, "5i"), (-3, "-3i"), (1.5, "1.5"), (2.0, "2.0"), (1e20, "1e+20"), (True, "true"), (False, "false"),
    ('he said "no" \\ twice', '"he said \\"no\\" \\\\ twice"'), ("two\nlines", '"two lines"'),
])
def test_field_values(value, text):
    assert encode_point(Point("m", {}, {"f": value}, 1)) == f"m f={text} 1"


def test_non_finite_fields_are_dropped_and_an_empty_point_is_not_written():
    assert encode_point(Point("m", {}, {"a": math.nan, "b": 1}, 1)) == "m b=1i 1"
    assert encode_point(Point("m", {}, {"a": math.inf}, 1)) is None
    assert encode_points([Point("m", {}, {"a": math.nan}, 1), Point("m", {}, {"v": 1}, 2)]) == ["m v=1i 2"]


def test_empty_tag_values_are_omitted_and_tags_sorted():
    assert encode_point(Point("m", {"z": "1", "a": "", "b": "2"}, {"v": 1}, 1)) == "m,b=2,z=1 v=1i 1"


def test_bad_points_raise():
    with pytest.raises(LineProtocolError):
        encode_point(Point("", {}, {"v": 1}, 1))
    with pytest.raises(LineProtocolError):
        encode_point(Point("m", {"": "x"}, {"v": 1}, 1))
    with pytest.raises(LineProtocolError):
        encode_point(Point("m", {}, {"v": [1]}, 1))  # type: ignore[dict-item]
    with pytest.raises(LineProtocolError):
        parse_line("m v=1i")


# -- properties --------------------------------------------------------------------------------
names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
string_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=30)
field_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    string_values,
)
points = st.builds(
    Point,
    measurement=names,
    tags=st.dictionaries(names, names, max_size=4),
    fields=st.dictionaries(names, field_values, min_size=1, max_size=4),
    time_ns=st.integers(min_value=0, max_value=2**62),
)


@settings(max_examples=300, deadline=None)
@given(points)
def test_round_trip(point):
    line = encode_point(point)
    assert line is not None
    parsed = parse_line(line)
    assert parsed.measurement == point.measurement
    assert dict(parsed.tags) == dict(point.tags)
    assert parsed.time_ns == point.time_ns
    assert set(parsed.fields) == set(point.fields)
    for key, value in point.fields.items():
        got = parsed.fields[key]
        assert type(got) is type(value)
        assert got == value


@settings(max_examples=300, deadline=None)
@given(points, st.text(st.characters(blacklist_categories=("Cs",)), max_size=10))
def test_a_point_is_always_exactly_one_line(point, nasty):
    nasty_point = Point(point.measurement + nasty, {**point.tags, "k" + nasty: "v" + nasty},
                        {**point.fields, "s": "x" + nasty}, point.time_ns)
    line = encode_point(nasty_point)
    assert line is not None
    assert "\n" not in line and "\r" not in line
    assert parse_line(line).time_ns == point.time_ns
