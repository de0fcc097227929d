import pytest

from metrics_collector.cgroups import (
    MalformedCgroupError,
    Usage,
    host_memory_bytes,
    locate,
    parse_cfs_quota,
    parse_count,
    parse_cpu_max,
    parse_memory_limit,
    read_usage,
    working_set,
)
from tests.unit.paths import CGROUP_FIXTURES


class TestParsers:
    @pytest.mark.parametrize(
        ("text", "cores"), [("max 100000\n", None), ("50000 100000\n", 0.5), ("200000 100000", 2.0)]
    )
    def test_cpu_max(self, text, cores):
        """cpu.max gives the quota over the period in cores, or none for max."""
        assert parse_cpu_max(text) == cores

    @pytest.mark.parametrize(
        ("quota", "period", "cores"), [("-1\n", "100000\n", None), ("20000", "100000", 0.2)]
    )
    def test_cfs_quota(self, quota, period, cores):
        """cgroup v1's quota over period is the limit in cores; -1 is none."""
        assert parse_cfs_quota(quota, period) == cores

    @pytest.mark.parametrize(("text", "count"), [("42\n", 42), ("-1", -1), (" 0 ", 0)])
    def test_a_count_as_the_kernel_writes_it(self, text, count):
        """A count is read as the kernel writes it, with its newline."""
        assert parse_count(text, "file") == count

    @pytest.mark.parametrize("text", ["", "--5", "5-", "1_000", "\u0663", "1.5", "-"])
    def test_anything_else_is_malformed_not_a_crash(self, text):
        """Anything the kernel would not write is a malformed file, not a crash."""
        with pytest.raises(MalformedCgroupError, match="file: not a number"):
            parse_count(text, "file")

    @pytest.mark.parametrize(
        ("text", "limit"), [("max\n", None), ("134217728\n", 134217728), ("9223372036854771712\n", None)]
    )
    def test_memory_limit(self, text, limit):
        """A memory limit is bytes; max, or v1's near-2⁶³ value, is none."""
        assert parse_memory_limit(text) == limit

    def test_working_set_subtracts_inactive_file_cache(self):
        """The working set is usage minus the inactive file cache, as the kubelet counts it, never below
        zero."""
        assert working_set(100, {"total_inactive_file": 30, "inactive_file": 1}, version=1) == 70
        assert working_set(100, {"inactive_file": 40}, version=2) == 60
        assert working_set(10, {"inactive_file": 40}, version=2) == 0

    def test_host_memory(self):
        """The host's memory is MemTotal, in bytes."""
        assert host_memory_bytes(CGROUP_FIXTURES / "meminfo") == 25165824 * 1024


class TestLocateAndRead:
    @pytest.mark.parametrize(
        ("tree", "container", "version", "usage"),
        [
            # cgroup v1 with cpu and cpuacct mounted apart (cgroupfs driver), limits set.
            ("v1_split", "aaaa1111", 1, Usage(1.5, 0.2, 52428800 - 10485760, 134217728)),
            # cgroup v1 with cpu,cpuacct joined (systemd driver), no limits.
            ("v1_joined_systemd", "bbbb2222", 1, Usage(0.25, None, 0, None)),
            # cgroup v2 (systemd driver): half a core, no memory limit.
            ("v2", "cccc3333", 2, Usage(2.5, 0.5, 104857600 - 20971520, None)),
        ],
    )
    def test_reads_each_layout(self, tree, container, version, usage):
        """A container is found and read in each layout: v1 split, v1 joined under systemd, and v2."""
        files = locate(CGROUP_FIXTURES / tree, container)
        assert files is not None
        assert files.version == version
        assert read_usage(files) == usage

    def test_unknown_container_is_not_found(self):
        """A container without cgroup files is not found, in either version."""
        assert locate(CGROUP_FIXTURES / "v1_split", "ffff") is None
        assert locate(CGROUP_FIXTURES / "v2", "ffff") is None

    def test_a_container_that_vanished_raises_oserror(self, tmp_path):
        """A container whose files vanished raises OSError, which the collector counts as gone, not as
        malformed."""
        files = locate(CGROUP_FIXTURES / "v2", "cccc3333")
        assert files is not None
        gone = type(files)(
            2,
            tmp_path / "cpu.stat",
            (tmp_path / "cpu.max",),
            tmp_path / "memory.current",
            tmp_path / "memory.stat",
            tmp_path / "memory.max",
        )
        with pytest.raises(FileNotFoundError):
            read_usage(gone)
