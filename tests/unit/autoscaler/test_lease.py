"""The lease that lets one autoscaler instance act: its rules, its store, and its loop."""

import asyncio

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler import lease
from autoscaler.leadership import Leadership
from autoscaler.lease import Elector, LeaseSettings, Record
from autoscaler.lease_store import ConfigLeaseStore, LeaseStoreError
from autoscaler.settings import load
from common.config import ConfigError
from tests.unit.fakes import FakeEngineConfigs

KUBERNETES = LeaseSettings(duration=15.0, renew_deadline=10.0, retry_period=2.0)


class Store:
    """The record as a conditional store keeps it: a write must name the version it read."""

    def __init__(self):
        self.record = Record("", 0, 1)

    def write(self, record):
        if record.version != self.record.version:
            return None
        self.record = Record(record.holder, record.term, self.record.version + 1)
        return self.record.version


def attempt(elector, me, store, now, settings=KUBERNETES):
    """One read and, if the rules want it, one conditional write, as the loop makes them."""
    elector = lease.observe(elector, store.record, now)
    wanted = lease.wanted_write(elector, me, now, settings)
    if wanted is None:
        return elector
    version = store.write(wanted)
    return lease.refused(elector) if version is None else lease.written(wanted, version, now)


class TestLeaseRules:
    def test_the_first_instance_waits_a_lease_duration_on_an_empty_record_then_takes_term_1(self):
        """An empty record is not free at once: it may have just been wiped under a live holder."""
        store, a = Store(), Elector()
        for now in (0.0, 2.0, 14.0):
            a = attempt(a, "a", store, now)
            assert not lease.leading(a, now, KUBERNETES)
        a = attempt(a, "a", store, 15.0)
        assert lease.leading(a, 15.0, KUBERNETES)
        assert (store.record.holder, store.record.term) == ("a", 1)

    def test_a_standby_never_takes_a_lease_that_is_renewed(self):
        """As long as the holder renews, a standby attempting between renewals never takes the lease."""
        store, a, b = Store(), Elector(), Elector()
        a = attempt(a, "a", store, 0.0)
        a = attempt(a, "a", store, 15.0)
        for now in range(16, 200, 2):
            a = attempt(a, "a", store, float(now))
            b = attempt(b, "b", store, now + 1.0)
            assert lease.leading(a, float(now), KUBERNETES)
            assert not lease.leading(b, now + 1.0, KUBERNETES)
        assert store.record.holder == "a"

    def test_a_standby_takes_over_a_lease_duration_after_the_last_renewal_it_saw(self):
        """A standby takes the lease one lease duration after it last saw it change, on its own clock."""
        store, a, b = Store(), Elector(), Elector()
        a = attempt(a, "a", store, 0.0)
        a = attempt(a, "a", store, 15.0)
        a = attempt(a, "a", store, 17.0)  # the last renewal: a's manager dies after it
        for now in (18.0, 20.0, 32.0):
            b = attempt(b, "b", store, now)
            assert not lease.leading(b, now, KUBERNETES)
        b = attempt(b, "b", store, 33.0)  # 15 s after it first saw a's last renewal, at 18
        assert lease.leading(b, 33.0, KUBERNETES)
        assert (store.record.holder, store.record.term) == ("b", 2)

    def test_a_holder_that_cannot_renew_stops_acting_before_anyone_can_take_over(self):
        """A holder that cannot renew stops acting at its renew deadline, before a standby's wait ends."""
        store, a = Store(), Elector()
        a = attempt(a, "a", store, 0.0)
        a = attempt(a, "a", store, 15.0)
        assert lease.leading(a, 24.9, KUBERNETES)
        assert not lease.leading(a, 25.0, KUBERNETES)  # the renew deadline, 10 s; a standby waits 15

    def test_a_refused_write_ends_the_term_at_once(self):
        """A renewal refused because another wrote first ends the term at once."""
        store, a = Store(), Elector()
        a = attempt(a, "a", store, 0.0)
        a = attempt(a, "a", store, 15.0)
        store.record = Record("b", 2, store.record.version + 1)  # b took it meanwhile
        a = lease.refused(a)
        assert not lease.leading(a, 15.5, KUBERNETES)
        a = attempt(a, "a", store, 16.0)
        assert not lease.leading(a, 16.0, KUBERNETES)

    def test_an_instance_named_as_holder_by_its_own_earlier_run_takes_it_back_at_once(self):
        """An instance restarted under the same name takes its lease back at once, in a new term."""
        store = Store()
        store.record = Record("a", 4, 7)
        a = attempt(Elector(), "a", store, 0.0)
        assert lease.leading(a, 0.0, KUBERNETES)
        assert store.record.term == 5

    @settings(max_examples=300, deadline=None)
    @given(
        rates=st.lists(st.floats(0.9, 1.1), min_size=3, max_size=3),
        events=st.lists(
            st.tuples(st.integers(0, 2), st.floats(0.0, 8.0), st.sampled_from(["read", "write"])),
            max_size=120,
        ),
    )
    def test_two_instances_never_act_at_once(self, rates, events):
        """Whatever the order, delays, stale reads and clock rates (within 10 %), at most one leads.

        A read and its write are separate events here, so an instance may write long
        after it read, as a slow or paused process would.
        """
        store, names = Store(), ["a", "b", "c"]
        electors, elapsed = [Elector() for _ in names], 0.0
        for index, step, kind in events:
            elapsed += step
            local = elapsed * rates[index]
            if kind == "read":
                electors[index] = lease.observe(electors[index], store.record, local)
            else:
                wanted = lease.wanted_write(electors[index], names[index], local, KUBERNETES)
                if wanted is not None:
                    version = store.write(wanted)
                    electors[index] = (
                        lease.refused(electors[index])
                        if version is None
                        else lease.written(wanted, version, local)
                    )
            leaders = [
                name
                for name, elector, rate in zip(names, electors, rates, strict=True)
                if lease.leading(elector, elapsed * rate, KUBERNETES)
            ]
            assert len(leaders) <= 1, leaders


class TestConfigLeaseStore:
    def run(self, engine, body):
        async def go():
            async with httpx.AsyncClient(transport=engine.transport(), base_url="http://docker") as client:
                return await body(ConfigLeaseStore(client, "stack"))

        return asyncio.run(go())

    def test_creates_the_lease_with_no_holder_and_writes_it_against_the_version_read(self):
        """The store creates the lease's config without a holder, and a write names the version it read."""
        engine = FakeEngineConfigs()

        async def body(store):
            record = await store.read()
            version = await store.write(Record("a", record.term + 1, record.version))
            return record, version, await store.read()

        record, version, after = self.run(engine, body)
        assert (record.holder, record.term) == ("", 0)
        assert after == Record("a", 1, version)
        assert engine.holder() == "a"

    def test_a_write_against_an_older_version_is_refused(self):
        """A write against a version someone else has written since is refused: the Raft store's compare-
        and-swap."""
        engine = FakeEngineConfigs()

        async def body(store):
            record = await store.read()
            await store.write(Record("a", 1, record.version))
            await store.write(Record("b", 1, record.version))

        with pytest.raises(LeaseStoreError, match="refused"):
            self.run(engine, body)
        assert engine.holder() == "a"

    def test_a_lease_another_instance_created_first_is_used(self):
        """When two instances create the lease at once, the loser uses the one that exists."""
        engine = FakeEngineConfigs()
        engine.answers = [httpx.Response(200, json=[])]  # the listing misses the config being created

        async def body(store):
            first = await store.read()
            return first, await ConfigLeaseStore(store._client, "stack").read()

        first, second = self.run(engine, body)
        assert first == second
        assert len(engine.configs) == 1

    @pytest.mark.parametrize(
        "answer",
        [
            httpx.Response(500, text="rpc error: no leader"),
            httpx.Response(200, text="not json"),
            httpx.Response(200, json={"not": "a list"}),
            httpx.Response(200, json=[{"Spec": {"Name": "autoscaler-lease-stack"}}]),
            httpx.Response(
                200,
                json=[
                    {
                        "ID": "x",
                        "Version": {"Index": True},
                        "Spec": {"Name": "autoscaler-lease-stack", "Labels": {"autoscaler.lease.term": "1"}},
                    }
                ],
            ),
            httpx.Response(
                200,
                json=[
                    {
                        "ID": "x",
                        "Version": {"Index": 3},
                        "Spec": {"Name": "autoscaler-lease-stack", "Labels": {"autoscaler.lease.term": "-1"}},
                    }
                ],
            ),
        ],
        ids=["engine error", "not json", "not a list", "no version", "version not a number", "negative term"],
    )
    def test_a_malformed_answer_fails_the_attempt(self, answer):
        """A malformed engine answer fails the attempt, never takes the lease."""
        engine = FakeEngineConfigs()
        engine.answers = [answer]

        async def body(store):
            await store.read()

        with pytest.raises(LeaseStoreError):
            self.run(engine, body)

    def test_an_engine_that_does_not_answer_fails_the_attempt(self):
        """An engine that does not answer fails the attempt."""

        def refuse(request):
            raise httpx.ConnectError("no socket", request=request)

        async def go():
            transport = httpx.MockTransport(refuse)
            async with httpx.AsyncClient(transport=transport, base_url="http://docker") as client:
                await ConfigLeaseStore(client, None).read()

        with pytest.raises(LeaseStoreError, match="did not answer"):
            asyncio.run(go())


class Instances:
    """Leadership loops of several instances on one fake engine, and a clock the test moves."""

    def __init__(self, *names, settings=KUBERNETES):
        self.engine = FakeEngineConfigs()
        self.now = 0.0
        self.settings = settings
        self.names = names

    async def start(self, client):
        self.loops = {
            name: Leadership(
                ConfigLeaseStore(client, "stack"), self.settings, name, monotonic=lambda: self.now
            )
            for name in self.names
        }
        return self.loops

    def run(self, body):
        async def go():
            async with httpx.AsyncClient(
                transport=self.engine.transport(), base_url="http://docker"
            ) as client:
                return await body(await self.start(client))

        return asyncio.run(go())


class TestLeadership:
    def test_one_instance_acts_and_says_so_and_the_other_stands_by(self):
        """Of two instances one acts, with a term, and the other stands by and says whom it follows."""
        instances = Instances("a", "b")

        async def body(loops):
            for now in (0.0, 1.0, 15.0, 16.0, 17.0):
                instances.now = now
                for loop in loops.values():
                    await loop.attempt()
            return loops["a"].status(), loops["b"].status(), loops["a"].acquired.is_set()

        a, b, woken = instances.run(body)
        assert (a.active, a.holder, a.term) == (True, "a", 1)
        assert a.active_since is not None
        assert (b.active, b.holder, b.active_since) == (False, "a", None)
        assert woken

    def test_confirm_renews_for_the_holder_and_refuses_a_deposed_one(self):
        """confirm() before a write renews for the holder and refuses an instance deposed since."""
        instances = Instances("a", "b")

        async def body(loops):
            a = loops["a"]
            await a.attempt()
            instances.now = 15.0
            await a.attempt()
            confirmed = await a.confirm()
            # b takes over while a is stalled and still believes it leads.
            b = loops["b"]
            await b.attempt()
            instances.now = 31.0
            await b.attempt()
            instances.now = 31.5
            a._elector = lease.written(Record("a", 1, a._elector.observed.version), 99, 31.5)
            return confirmed, await a.confirm(), b.leading()

        confirmed, stale, b_leads = instances.run(body)
        assert confirmed
        assert not stale
        assert b_leads
        assert instances.engine.holder() == "b"

    def test_an_engine_without_quorum_ends_the_term_within_the_renew_deadline(self):
        """When the managers lose quorum, renewals fail and the term ends within the renew deadline."""
        instances = Instances("a")

        async def body(loops):
            a = loops["a"]
            await a.attempt()
            instances.now = 15.0
            await a.attempt()
            instances.engine.down = True
            leading = []
            for now in (17.0, 19.0, 21.0, 23.0, 25.0):
                instances.now = now
                await a.attempt()
                leading.append(a.leading())
            return leading, a.status()

        leading, status = instances.run(body)
        assert leading == [True, True, True, True, False]  # renewed at 15, it stops at 15 + 10
        assert status.problem is not None


class TestLeaseSettings:
    def test_kubernetes_defaults(self):
        """The lease's defaults are client-go's: 15 s lease, 10 s renew deadline, 2 s retry."""
        assert load({}).instance.lease == KUBERNETES

    @pytest.mark.parametrize(
        ("environment", "variable"),
        [
            ({"LEASE_RENEW_DEADLINE": "15"}, "LEASE_RENEW_DEADLINE"),
            ({"LEASE_DURATION": "5"}, "LEASE_RENEW_DEADLINE"),
            ({"LEASE_RETRY_PERIOD": "10"}, "LEASE_RETRY_PERIOD"),
            ({"LEASE_DURATION": "nan"}, "LEASE_DURATION"),
            ({"DOCKER_HOST": "ssh://manager"}, "DOCKER_HOST"),
        ],
    )
    def test_a_bad_value_names_its_variable(self, environment, variable):
        """Renewals must come before the deadline, and the deadline before anyone may take over."""
        with pytest.raises(ConfigError) as raised:
            load(environment)
        assert raised.value.name == variable
