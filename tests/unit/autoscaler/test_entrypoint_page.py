"""The entry point's page of counters, read line by line: only the kept families, as the text format says."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.entrypoint_page import PageReader, parse
from tests.unit.fakes import counted, exposition, label_value

LUA_PAGE_EXTRAS = """# HELP entrypoint_upstream_response_duration_seconds Time a task took.
# TYPE entrypoint_upstream_response_duration_seconds histogram
entrypoint_upstream_response_duration_seconds_bucket{service="web",le="0.001"} 0
entrypoint_upstream_response_duration_seconds_bucket{service="web",le="+Inf"} 2
entrypoint_upstream_response_duration_seconds_sum{service="web"} 0.300000
entrypoint_upstream_response_duration_seconds_count{service="web"} 2
# TYPE entrypoint_upstream_tries_total counter
entrypoint_upstream_tries_total{service="web",upstream="10.0.1.5:8000",status="200"} 2
# TYPE entrypoint_requests_in_flight gauge
entrypoint_requests_in_flight{service="web"} 1
# TYPE entrypoint_lost_counts_total counter
entrypoint_lost_counts_total 0
"""


class TestParse:
    def test_reads_every_service(self):
        """Every service on the page is read with its counts by status and its histogram."""
        text = exposition("web", counted([0.1, 0.2]), {"200": 1, "503": 1}) + exposition(
            "api", counted([0.3]), {"404": 1}
        )
        reading = parse(text)
        assert set(reading.services) == {"web", "api"}
        assert (reading.services["web"].requests, reading.services["web"].errors) == (2, 1)
        assert reading.services["api"].errors == 0  # a 4xx is the client's
        assert reading.malformed == {}

    @pytest.mark.parametrize(
        ("old", "new", "problem"),
        [
            ('le="+Inf"} 1', 'le="200"} 1', "no +Inf bucket"),
            ('le="0.001"} 0', 'le="0.001"} 7', "bucket counts decrease"),
            ('code="200"} 1', 'code="2xx"} 1', "status code"),
            ('code="200"} 1', 'code="200"} NaN', "not a finite number"),
            ('le="0.001"} 0', 'le="-1"} 0', "not a positive number"),
        ],
    )
    def test_a_service_with_inconsistent_counters_is_left_out_alone(self, old, new, problem):
        """A service whose counters are inconsistent is left out and named; the others are read."""
        good = exposition("web", counted([0.1]), {"200": 1})
        bad = exposition("api", counted([0.1]), {"200": 1}).replace(old, new)
        reading = parse(good + bad)
        assert set(reading.services) == {"web"}
        assert problem in reading.malformed["api"]

    def test_text_that_is_not_prometheus_is_an_error(self):
        """A page that is not Prometheus text is an error for the whole instance."""
        with pytest.raises(ValueError, match="metric name"):
            parse("<html>502 Bad Gateway</html>")

    @pytest.mark.parametrize(
        "line",
        ["<html>", "   ", "\t", '{service="web"} 1', "  <p>", "1 2", "\r"],
    )
    @pytest.mark.parametrize("where", ["first", "middle", "last"])
    def test_a_line_without_a_metric_name_anywhere_is_an_error(self, line, where):
        """A line that is not empty, a comment or a sample is found wherever it is in the page."""
        page = exposition("web", counted([0.1]), {"200": 1}).rstrip("\n").split("\n")
        page.insert({"first": 0, "middle": len(page) // 2, "last": len(page)}[where], line)
        with pytest.raises(ValueError, match="metric name"):
            parse("\n".join(page))

    @pytest.mark.parametrize("line", ["", "# a comment", "  nginx_up 1", "\tnginx_up 1", ":odd_name 1"])
    def test_empty_lines_comments_and_indented_samples_are_text(self, line):
        """What the text format allows between samples is read past."""
        page = exposition("web", counted([0.1]), {"200": 1})
        assert parse(f"{line}\n{page}\n{line}") == parse(page)

    def test_other_metrics_are_ignored(self):
        """Families other than the entry point's are ignored."""
        assert parse("# TYPE nginx_up gauge\nnginx_up 1\n").services == {}

    def test_the_families_not_kept_are_skipped_as_the_lua_page_writes_them(self):
        """The upstream histogram, the tries and the gauges change nothing."""
        page = exposition("web", counted([0.1, 0.2]), {"200": 2})
        assert parse(page + LUA_PAGE_EXTRAS) == parse(page)

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ('{service="web",code="200"}', '{ service = "web" , code = "200" , }'),  # spaces, a last comma
            ('code="200"} 1', 'code="200"} 1 1700000000000'),  # a timestamp
            ('code="200"} 1', 'code="200"} 1e0'),
        ],
    )
    def test_the_forms_the_text_format_allows_read_the_same(self, old, new):
        """Whitespace, a trailing comma, a timestamp and an exponent are the same sample."""
        page = exposition("web", counted([0.1]), {"200": 1})
        assert old in page
        assert parse(page.replace(old, new)) == parse(page)

    def test_a_service_name_with_a_brace_reads_as_the_library_reads_it(self):
        """A label value holding ``}`` is read past the brace."""
        reading = parse(exposition("we} 1", counted([0.1]), {"200": 1}))
        assert set(reading.services) == {"we} 1"}

    def test_a_kept_line_that_is_not_a_sample_is_an_error(self):
        """A broken line of a kept family is the page's error, as the library says."""
        with pytest.raises(ValueError):  # noqa: PT011 - the library's message, whatever it says
            parse('entrypoint_requests_total{service="web" 1\n')

    @pytest.mark.parametrize("lines_a_piece", [1, 2, 7])
    def test_a_page_fed_in_pieces_reads_as_the_whole_text(self, lines_a_piece):
        """The reader keeps nothing of a line but its sample, so a page can be read as it arrives."""
        page = exposition("web", counted([0.1, 2.0]), {"200": 1, "500": 1})
        lines = page.split("\n")
        reader = PageReader()
        for start in range(0, len(lines), lines_a_piece):
            reader.feed("\n".join(lines[start : start + lines_a_piece]))
        assert reader.reading() == parse(page)
        assert reader.reading().services["web"].requests == 2


names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


class TestAgainstTheLibrary:
    @settings(max_examples=200, deadline=None)
    @given(
        services=st.dictionaries(
            names, st.lists(st.floats(0.0005, 200.0), max_size=20), min_size=1, max_size=4
        ),
        errors=st.integers(0, 3),
    )
    def test_any_service_names_read_back_with_their_counters(self, services, errors):
        """Names with quotes, backslashes, newlines or braces come back as written, with their counters.

        The library's parser reads the same names from the same page.
        """
        page = "".join(
            exposition(name, counted(durations, min(errors, len(durations))), {"200": len(durations)})
            for name, durations in services.items()
        )
        reading = parse(page)
        assert reading.malformed == {}
        assert set(reading.services) == set(services)
        for name, durations in services.items():
            assert reading.services[name].cumulative == counted(durations).cumulative
            assert reading.services[name].requests == len(durations)
        library = {
            sample.labels["service"]
            for family in text_string_to_metric_families(page)
            for sample in family.samples
        }
        assert library == set(services)

    def test_the_escapes_are_those_of_the_text_format(self):
        """A backslash, a quote and a newline, escaped by the writer, are read back as they were."""
        name = 'a\\b"c\nd'
        assert label_value(name) == 'a\\\\b\\"c\\nd'
        assert set(parse(exposition(name, counted([0.1]), {"200": 1})).services) == {name}
        assert parse(exposition(name, counted([0.1]), {"200": 1})).services[name].requests == 1
