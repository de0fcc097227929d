import asyncio

import httpx
import pytest

from autoscaler.core.model import MetricSource, Observation, Thresholds
from autoscaler.policy import service_policy
from autoscaler.sources import BadValueError, combined, parse_source, read_source, value_in
from common.config import ConfigError

PAGE = """\
# HELP queue_length Jobs waiting.
# TYPE queue_length gauge
queue_length{queue="mail"} 7
queue_length{queue="video"} 3
# TYPE other gauge
other 100
"""

LABELS = {
    "autoscaler.source.url": "http://tasks.worker:9100/metrics",
    "autoscaler.source.metric": "queue_length",
    "autoscaler.source.scale_up_threshold": "10",
}


class TestValueIn:
    def test_adds_up_the_samples_that_match(self):
        """Every sample of the metric counts, unless a selector narrows them."""
        assert value_in(PAGE, "queue_length", ()) == 10
        assert value_in(PAGE, "queue_length", (("queue", "mail"),)) == 7

    def test_no_matching_sample_is_no_value(self):
        """A metric that is not there is missing, not zero."""
        assert value_in(PAGE, "absent", ()) is None
        assert value_in(PAGE, "queue_length", (("queue", "none"),)) is None

    @pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf"])
    def test_a_value_that_is_not_a_finite_number_is_refused(self, value):
        """A source value that is NaN or infinite is refused, naming the metric."""
        with pytest.raises(BadValueError, match="queue_length is"):
            value_in(f"queue_length {value}\n", "queue_length", ())

    @pytest.mark.parametrize("text", ["queue_length{ 7\n", "queue_length seven\n", "<html>oops</html>\n"])
    def test_garbage_is_refused(self, text):
        """An answer that is not Prometheus text is refused."""
        with pytest.raises(BadValueError, match="not Prometheus text"):
            value_in(text, "queue_length", ())


class TestCombined:
    @pytest.mark.parametrize(("how", "expected"), [("sum", 12.0), ("mean", 4.0), ("max", 7.0)])
    def test_combines_the_tasks_values(self, how, expected):
        """The tasks' values combine by sum, mean or max."""
        assert combined([2.0, 3.0, 7.0], how) == expected

    def test_no_values_is_no_value(self):
        """No values combine to no value, not zero."""
        assert combined([], "max") is None


class TestParseSource:
    def test_labels_name_the_source_and_its_thresholds(self):
        """The down threshold is half the up one unless set; the rest has defaults."""
        source, thresholds = parse_source(LABELS)
        assert source == MetricSource(urls=("http://tasks.worker:9100/metrics",), metric="queue_length")
        assert thresholds == Thresholds(up=10, down=5)

    def test_every_option(self):
        """Every autoscaler.source.* label is read into the source."""
        labels = {
            **LABELS,
            "autoscaler.source.url": "http://a:1/m, http://b:2/m",
            "autoscaler.source.selector": 'queue="mail", kind=fast',
            "autoscaler.source.combine": "max",
            "autoscaler.source.per_replica": "true",
            "autoscaler.source.timeout": "0.5",
            "autoscaler.source.scale_down_threshold": "2",
        }
        source, thresholds = parse_source(labels)
        assert source.urls == ("http://a:1/m", "http://b:2/m")
        assert source.selector == (("queue", "mail"), ("kind", "fast"))
        assert (source.combine, source.per_replica, source.timeout) == ("max", True, 0.5)
        assert thresholds == Thresholds(up=10, down=2)

    def test_no_source_labels_is_no_source(self):
        """Without source labels a service has no source."""
        assert parse_source({"autoscaler.min_replicas": "1"}) is None

    @pytest.mark.parametrize(
        ("label", "value", "problem"),
        [
            ("autoscaler.source.url", "ftp://x/m", "http"),
            ("autoscaler.source.metric", "queue-length", "metric name"),
            ("autoscaler.source.combine", "median", "one of"),
            ("autoscaler.source.selector", "queue", "label=value"),
            ("autoscaler.source.scale_up_threshold", "lots", "number"),
            ("autoscaler.source.scale_down_threshold", "20", "below the up threshold"),
            ("autoscaler.source.per_replica", "perhaps", "true"),
            ("autoscaler.source.timeout", "0", "0.1"),
            ("autoscaler.source.colour", "blue", "unknown label"),
        ],
    )
    def test_a_bad_label_is_named(self, label, value, problem):
        """A bad source label is named, with its problem."""
        with pytest.raises(ConfigError, match=problem) as raised:
            parse_source({**LABELS, label: value})
        assert raised.value.name == label

    def test_a_source_needs_its_url_metric_and_threshold(self):
        """A source without its URL, metric or threshold is refused, naming the label missing."""
        for required in ("url", "metric", "scale_up_threshold"):
            labels = {key: value for key, value in LABELS.items() if not key.endswith(required)}
            with pytest.raises(ConfigError) as raised:
                parse_source(labels)
            assert raised.value.name == f"autoscaler.source.{required}"


class TestSourcePolicy:
    def test_a_source_adds_the_external_metric(self):
        """As a per-replica target does: the defaults and the source's metric."""
        policy = service_policy({}, {"autoscaler.enable": "true", **LABELS})
        assert "external" in policy.metrics
        assert policy.thresholds.external == Thresholds(up=10, down=5)
        assert policy.source is not None

    def test_external_without_a_source_is_refused(self):
        """Scaling on external without a source is refused."""
        with pytest.raises(ConfigError, match="metric source"):
            service_policy({}, {"autoscaler.scaling_metrics": "external"})

    def test_a_minimum_of_zero_is_allowed(self):
        """With a source, a minimum of zero replicas is allowed: the source can wake the service."""
        policy = service_policy({}, {"autoscaler.min_replicas": "0", **LABELS})
        assert policy.min_replicas == 0


class TestObservationValue:
    def test_per_replica_shares_the_value_out(self):
        """A per-replica source is divided among the ready replicas; otherwise it is the service's value."""
        observation = Observation(
            current_replicas=4, ready_replicas=2, external=10.0, external_per_replica=True
        )
        assert observation.value("external") == 5.0
        assert Observation(current_replicas=4, external=10.0).value("external") == 10.0


def transport(pages):
    """Each host answers its page: text (200), an int (that status) or an exception to raise."""

    def handle(request):
        page = pages[request.url.host]
        if isinstance(page, Exception):
            raise page
        if isinstance(page, int):
            return httpx.Response(page, text="no")
        return httpx.Response(200, text=page)

    return httpx.MockTransport(handle)


def resolve_to(by_host):
    async def resolve(host, port):
        if host not in by_host:
            raise OSError("Name or service not known")
        return by_host[host]

    return resolve


class TestReadSource:
    SOURCE = MetricSource(
        urls=("http://tasks.primary:8008/metrics", "http://tasks.replica:8008/metrics"),
        metric="queue_length",
        combine="max",
    )

    def read(self, pages, by_host, source=SOURCE):
        async def go():
            async with httpx.AsyncClient(transport=transport(pages)) as client:
                return await read_source(source, client, resolve_to(by_host), lambda: 50.0)

        return asyncio.run(go())

    def test_reads_every_task_of_every_url(self):
        """Every task behind every URL is read and their values combined."""
        pages = {
            "10.0.0.1": "queue_length 4\n",
            "10.0.0.2": "queue_length 9\n",
            "10.0.0.3": "queue_length 1\n",
        }
        reading = self.read(pages, {"tasks.primary": ["10.0.0.1"], "tasks.replica": ["10.0.0.2", "10.0.0.3"]})
        assert (reading.value, reading.tasks, reading.read_at, reading.problems) == (9.0, 3, 50.0, {})

    def test_a_name_without_tasks_adds_nothing(self):
        """A service at 0 replicas has no DNS entry for its tasks: that is no problem."""
        reading = self.read({"10.0.0.1": "queue_length 4\n"}, {"tasks.primary": ["10.0.0.1"]})
        assert (reading.value, reading.tasks, reading.problems) == (4.0, 1, {})

    @pytest.mark.parametrize(
        "bad", ["queue_length NaN\n", "}}garbage{{\n", 500, httpx.ConnectTimeout("timed out")]
    )
    def test_one_bad_task_makes_the_value_unknown_and_is_named(self, bad):
        """A partial sum or maximum could ask for a wrong scale-down: the value is missing instead."""
        pages = {"10.0.0.1": "queue_length 4\n", "10.0.0.2": bad}
        reading = self.read(pages, {"tasks.primary": ["10.0.0.1"], "tasks.replica": ["10.0.0.2"]})
        assert reading.value is None
        assert list(reading.problems) == ["http://10.0.0.2:8008/metrics"]

    def test_no_task_at_all_is_no_value_and_a_problem(self):
        """A misspelt name, or every service of the source at 0: the source reads nothing, and says so."""
        reading = self.read({}, {})
        assert reading.value is None
        assert reading.problems == {
            "tasks.primary, tasks.replica": "no address: no task of any of these names"
        }

    def test_an_absent_metric_can_count_zero(self):
        """An empty Redis list is no key, so its exporter has no sample: 0 jobs, with absent_is_zero."""
        source = MetricSource(
            urls=("http://tasks.exporter:9121/metrics",), metric="redis_key_size", absent_is_zero=True
        )
        reading = self.read({"10.0.0.1": "other 1\n"}, {"tasks.exporter": ["10.0.0.1"]}, source)
        assert (reading.value, reading.tasks) == (0.0, 1)
