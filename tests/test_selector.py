"""Label selectors (`GET /v2/apps?label=`), Marathon's LabelSelectorParsersTest and more."""

from __future__ import annotations

import pytest

from scheduler.api.selector import SelectorSyntaxError, parse_label_selector


@pytest.mark.parametrize("text, labels, expected", [
    ("existence", {"existence": "one"}, True),
    ("existence", {"none": "one"}, False),
    ("foo == one", {"foo": "one"}, True),
    ("foo==one", {"foo": "one"}, True),
    ("foo == one", {"foo": "four"}, False),
    ("foo == one", {"bla": "one"}, False),
    ("foo != one", {"foo": "one"}, False),
    ("foo != one", {"foo": "four"}, True),
    ("foo != one", {"bla": "one"}, False),                 # the label must exist
    (r"foo in (one, two, three\ is\ cool)", {"foo": "three is cool"}, True),
    ("foo in (one, two, three)", {"foo": "one"}, True),
    ("foo in (one, two, three)", {"foo": "four"}, False),
    ("foo in (one, two, three)", {"bla": "one"}, False),
    ("foo in(one)", {"foo": "one"}, True),
    ("foo in ()", {"foo": "one"}, False),
    ("bla notin (one, two, three)", {"bla": "one"}, False),
    ("bla notin (one, two, three)", {"bla": "four"}, True),
    ("bla notin (one, two, three)", {"rest": "one"}, False),
    ("foo==one, bla!=one, foo in (one, two, three), bla notin (one, two, three), existence",
     {"foo": "one", "bla": "four", "existence": "true"}, True),
    ("foo==one, bla!=one, foo in (one, two, three), bla notin (one, two, three), existence",
     {"foo": "one"}, False),
    (r"\{\{\{ in (\*\*\*, \&\&\&, \$\$\$), \^\^\^ notin (\-\-\-, \!\!\!, \@\@\@), \#\#\#",
     {"{{{": "&&&", "^^^": "&&&", "###": "&&&"}, True),
    (r"\{\{\{ in (\*\*\*, \&\&\&, \$\$\$), \^\^\^ notin (\-\-\-, \!\!\!, \@\@\@), \#\#\#",
     {"^^^": "---"}, False),
    ("HAPROXY_GROUP==external", {"HAPROXY_GROUP": "external"}, True),
    ("a.b-c_d == 1.0", {"a.b-c_d": "1.0"}, True),
    ("in", {"in": "x"}, True),                              # a label may be called "in"
    ("  env  ==  prod  ,tier", {"env": "prod", "tier": ""}, True),
    ("", {}, True),                                         # no selector matches everything
    (r"path == \/x\/y", {"path": "/x/y"}, True),
])
def test_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(text)(labels) is expected


@pytest.mark.parametrize("text, fragment", [
    ("foo some (one, two, three)", "'some (one, t'"),
    ("foo in one", "'(' after 'in'"),
    ("foo test", "'test'"),
    ("foo = bar", "'= bar'"),
    ("foo ==", "a value after '=='"),
    ("foo in (a,", "a value in the set"),
    ("foo in (a b)", "')'"),
    ("foo,,bar", "a label name"),
    ("env==prod,", "a label name"),
    ("key == a/b", "expected ',' or the end at position 8, found '/b'"),
    ("foo in one", "found 'one'"),
    ("trailing\\", "dangling backslash"),
])
def test_syntax_errors_name_the_bad_part(text: str, fragment: str) -> None:
    with pytest.raises(SelectorSyntaxError) as info:
        parse_label_selector(text)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)
