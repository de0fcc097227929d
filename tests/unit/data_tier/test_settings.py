"""The data tier's settings and arguments."""

import pytest

from common.config import ConfigError
from data_tier.__main__ import parse_arguments
from data_tier.settings import postgres_settings


class TestSettings:
    def test_bad_values_are_named(self):
        """A bad setting is named at start, and a password is never shown."""
        with pytest.raises(ConfigError) as raised:
            postgres_settings({"MAX_CONNECTIONS": "3"}, "replica")
        assert raised.value.name == "MAX_CONNECTIONS"
        with pytest.raises(ConfigError) as raised:
            postgres_settings({"DATABASE_PASSWORD": "it's"}, "primary")
        assert (raised.value.name, raised.value.value) == ("DATABASE_PASSWORD", "(hidden)")

    def test_arguments_name_the_kind_and_role(self):
        """The agent's arguments are a kind and a role it knows, nothing else."""
        assert parse_arguments(["postgres", "replica"]) == ("postgres", "replica")
        with pytest.raises(ConfigError):
            parse_arguments(["mysql", "primary"])
