"""The autoscaler's reading of the entry points' counters: windows per instance, merged."""

import asyncio

import httpx
import pytest

from autoscaler import entrypoint
from autoscaler.entrypoint import read_entry_points
from autoscaler.settings import EntryPointSettings
from tests.unit.fakes import ENTRYPOINT_PORT, collector_transport, counted, exposition

SETTINGS = EntryPointSettings(address="tasks.nginx", port=ENTRYPOINT_PORT, window=15, surge_window=6)
FIRST, SECOND = "10.0.0.7", "10.0.0.8"


def text(fast=0, slow=0, errors=0, service="web"):
    """An instance's counters: ``fast`` requests of 10 ms, ``slow`` of 2 s, ``errors`` of them 500s."""
    counters = counted([0.01] * fast + [2.0] * slow, errors)
    codes = {"200": fast + slow - errors, "500": errors} if errors else {"200": fast + slow}
    return exposition(service, counters, codes)


class Instances:
    """Entry points whose answers and addresses a test changes between reads, on a clock it moves."""

    def __init__(self, answers):
        self.answers = answers
        self.addresses = None
        self.now = 1000.0
        self.history = {}

    def read(self, at=None):
        if at is not None:
            self.now = at

        async def resolve(host, port):
            assert (host, port) == (SETTINGS.address, SETTINGS.port)
            if self.addresses == "unresolvable":
                raise OSError("Name or service not known")
            return list(self.answers) if self.addresses is None else self.addresses

        async def go():
            async with httpx.AsyncClient(transport=collector_transport({}, self.answers)) as client:
                return await read_entry_points(SETTINGS, client, resolve, self.history, lambda: self.now)

        reading, self.history = asyncio.run(go())
        return reading


class TestReadEntryPoints:
    def test_the_first_read_names_the_services_but_has_no_window_yet(self):
        """The first read names the services counted but has no window: one reading is no difference."""
        reading = Instances({FIRST: text(fast=10)}).read()
        assert (reading.windows, reading.counted, reading.instances_answered) == ({}, {"web"}, 1)

    def test_a_window_is_the_difference_of_two_reads(self):
        """A window is what the counters gained between two reads."""
        instances = Instances({FIRST: text(fast=10)})
        instances.read(at=1000)
        instances.answers[FIRST] = text(fast=40, slow=10, errors=5)
        window = instances.read(at=1020).windows["web"]
        assert (window.counters.requests, window.counters.errors, window.seconds) == (40, 5, 20)
        assert window.rate == pytest.approx(2.0)
        assert window.error_percent == pytest.approx(12.5)
        assert window.latency_ms(0.95) > 1000  # 10 of 40 took 2 s

    def test_the_window_starts_at_the_newest_read_at_least_a_window_old(self):
        """The window starts at the newest read at least METRICS_WINDOW old."""
        instances = Instances({FIRST: text(fast=0)})
        for at, fast in ((1000, 0), (1010, 100), (1020, 300), (1030, 700)):
            instances.answers[FIRST] = text(fast=fast)
            reading = instances.read(at=at)
        window = reading.windows["web"]
        assert (window.counters.requests, window.seconds) == (600, 20)  # from the read at 1010

    def test_instances_are_merged(self):
        """Every entry point instance's window is added into the service's."""
        instances = Instances({FIRST: text(fast=0), SECOND: text(fast=0)})
        instances.read(at=1000)
        instances.answers = {FIRST: text(fast=100), SECOND: text(slow=100)}
        window = instances.read(at=1010).windows["web"]
        assert (window.counters.requests, window.rate) == (200, 20)
        assert window.latency_ms(0.25) < 20
        assert window.latency_ms(0.75) > 1000

    def test_a_restarted_instance_counts_from_zero(self):
        """An instance whose counters went down restarted: it counts from zero."""
        instances = Instances({FIRST: text(fast=500)})
        instances.read(at=1000)
        instances.answers[FIRST] = text(fast=30)
        assert instances.read(at=1010).windows["web"].counters.requests == 30

    def test_an_instance_that_fails_is_named_and_the_others_still_count(self):
        """An instance that fails is named, and the others' counts still make the window."""
        instances = Instances({FIRST: text(fast=0), SECOND: text(fast=0)})
        instances.read(at=1000)
        instances.answers = {FIRST: text(fast=50), SECOND: None}
        reading = instances.read(at=1010)
        assert set(reading.errors) == {SECOND}
        assert (reading.instances_answered, reading.windows["web"].counters.requests) == (1, 50)

    def test_a_page_over_the_bound_is_named_apart_and_counts_as_unread(self, monkeypatch):
        """Over MOST_CHARACTERS, an instance is not read further: too_large names it, unread counts it."""
        monkeypatch.setattr(entrypoint, "MOST_CHARACTERS", len(text(fast=1)) - 1)
        reading = Instances({FIRST: text(fast=1), SECOND: "# nothing counted yet\n"}).read()
        assert set(reading.too_large) == {FIRST}
        assert "not read" in reading.too_large[FIRST]
        assert reading.errors == {}
        assert (reading.instances_answered, reading.unread) == (1, 1)

    def test_every_instance_that_gives_no_counters_counts_as_unread(self):
        """Errors count as unread; instances that answered do not."""
        reading = Instances({FIRST: None, SECOND: text(fast=1)}).read()
        assert (reading.instances_answered, reading.unread) == (1, 1)

    def test_an_answer_that_is_not_counters_is_that_instance_not_answering(self):
        """An answer that is not counters is that instance not answering."""
        reading = Instances({FIRST: "{not prometheus text"}).read()
        assert set(reading.errors) == {FIRST}

    def test_a_service_with_inconsistent_counters_is_named_and_left_out(self):
        """A service whose counters do not add up is named and left out; the others are read."""
        answer = (
            '# TYPE entrypoint_requests_total counter\nentrypoint_requests_total{service="web",code="1"} 1\n'
        )
        reading = Instances({FIRST: answer, SECOND: text(fast=1, service="api")}).read()
        assert set(reading.entry_problems) == {f"web at {FIRST}"}
        assert reading.counted == {"api"}

    def test_an_instance_gone_from_dns_is_forgotten(self):
        """An instance gone from DNS is forgotten with its history."""
        instances = Instances({FIRST: text(fast=10), SECOND: text(fast=10)})
        instances.read(at=1000)
        instances.addresses = [SECOND]
        instances.read(at=1010)
        instances.addresses = None
        instances.answers[FIRST] = text(fast=20)
        # Had FIRST's reading at 1000 been kept, its 10 new requests would be in the window.
        assert instances.read(at=1020).windows["web"].counters.requests == 0

    def test_an_instance_that_misses_one_read_keeps_its_window(self):
        """An instance that misses one read keeps its history, and its window resumes."""
        instances = Instances({FIRST: text(fast=10)})
        instances.read(at=1000)
        instances.answers[FIRST] = None
        instances.read(at=1010)
        instances.answers[FIRST] = text(fast=25)
        assert instances.read(at=1020).windows["web"].counters.requests == 15

    def test_an_unresolvable_name_is_an_error_and_no_window(self):
        """An entry point name that does not resolve is an error, and no window is made up."""
        instances = Instances({FIRST: text(fast=10)})
        instances.addresses = "unresolvable"
        reading = instances.read()
        assert reading.windows == {}
        assert "cannot resolve" in reading.errors["tasks.nginx"]
