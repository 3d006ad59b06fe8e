"""The controller's settings: EDGEFLEET_* variables, command-line overrides, and a clear error for every bad
value (edgefleet.cloud.settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.cloud.controller import advertised_address
from edgefleet.cloud.settings import IN_CLUSTER, Settings


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.broker_url == "mqtt://127.0.0.1:1883"
    assert (settings.broker_host, settings.broker_port) == ("127.0.0.1", 1883)
    assert settings.database_url == "sqlite:///var/edgefleet.db"
    assert (tmp_path / "var").is_dir()  # created for the SQLite file
    assert (settings.listen_host, settings.listen_port, settings.listen) == ("127.0.0.1", 8000, "127.0.0.1:8000")
    assert settings.sites_dir == Path("sites")
    assert settings.flush_interval_s == 2.0
    assert settings.history_retention_s == 86_400.0
    assert settings.history_max_points == 720
    assert settings.rollout_tick_s == 2.0
    assert settings.leader_lease_s == 6.0


def test_environment_is_read(tmp_path: Path) -> None:
    environ = {
        "EDGEFLEET_BROKER_URL": "mqtt://broker.local:11883",
        "EDGEFLEET_DATABASE_URL": f"sqlite:///{tmp_path}/data/fleet.db",
        "EDGEFLEET_LISTEN": "[::1]:9000",
        "EDGEFLEET_SITES_DIR": "/etc/edgefleet/sites",
        "EDGEFLEET_FLUSH_INTERVAL": "0.5",
        "EDGEFLEET_HISTORY_RETENTION": "6h",
        "EDGEFLEET_HISTORY_MAX_POINTS": "100",
        "EDGEFLEET_ROLLOUT_TICK": "0.3s",
        "EDGEFLEET_LEADER_LEASE": "2.5s",
    }
    settings = Settings.from_env(environ)
    assert (settings.broker_host, settings.broker_port) == ("broker.local", 11883)
    assert (tmp_path / "data").is_dir()
    assert (settings.listen_host, settings.listen_port, settings.listen) == ("::1", 9000, "[::1]:9000")
    assert settings.sites_dir == Path("/etc/edgefleet/sites")
    assert settings.flush_interval_s == 0.5
    assert settings.history_retention_s == 6 * 3600
    assert settings.history_max_points == 100
    assert settings.rollout_tick_s == 0.3
    assert settings.leader_lease_s == 2.5


def test_overrides_win_and_none_is_ignored(tmp_path: Path) -> None:
    environ = {"EDGEFLEET_LISTEN": "127.0.0.1:8000", "EDGEFLEET_DATABASE_URL": f"sqlite:///{tmp_path}/a.db"}
    settings = Settings.from_env(
        environ, listen="0.0.0.0:8080", database_url=None, flush_interval_s=1, sites_dir=tmp_path
    )
    assert (settings.listen_host, settings.listen_port) == ("0.0.0.0", 8080)
    assert settings.database_url == f"sqlite:///{tmp_path}/a.db"
    assert settings.flush_interval_s == 1.0
    assert settings.sites_dir == tmp_path


def test_password_stays_out_of_repr() -> None:
    settings = Settings.from_env({"EDGEFLEET_DATABASE_URL": "postgresql://edgefleet:s3cret@db.local:5432/fleet"})
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in settings.database_url_shown
    assert settings.database_url_shown == "postgresql://edgefleet:***@db.local:5432/fleet"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("EDGEFLEET_BROKER_URL", "http://broker:1883", "expected mqtt://HOST:PORT"),
        ("EDGEFLEET_BROKER_URL", "mqtt://:1883", "names no host"),
        ("EDGEFLEET_BROKER_URL", "mqtt://broker:99999", "invalid port"),
        ("EDGEFLEET_DATABASE_URL", "mysql://root@db/fleet", "not supported"),
        ("EDGEFLEET_DATABASE_URL", "not a url", "is no database URL"),
        ("EDGEFLEET_DATABASE_URL", "postgresql://u:hunter2@db", "names no database"),
        ("EDGEFLEET_LISTEN", "8000", "expected HOST:PORT"),
        ("EDGEFLEET_LISTEN", "localhost:http", "port must be a number"),
        ("EDGEFLEET_LISTEN", "localhost:0", "port must be a number from 1 to 65535"),
        ("EDGEFLEET_LISTEN", "::1:8000", "IPv6 address in brackets"),
        ("EDGEFLEET_FLUSH_INTERVAL", "soon", "expected seconds"),
        ("EDGEFLEET_FLUSH_INTERVAL", "0", "greater than 0"),
        ("EDGEFLEET_HISTORY_RETENTION", "-1h", "expected seconds"),
        ("EDGEFLEET_HISTORY_MAX_POINTS", "0", "whole number >= 1"),
        ("EDGEFLEET_HISTORY_MAX_POINTS", "12.5", "whole number >= 1"),
        ("EDGEFLEET_ROLLOUT_TICK", "often", "expected seconds"),
        ("EDGEFLEET_ROLLOUT_TICK", "0s", "greater than 0"),
        ("EDGEFLEET_LEADER_LEASE", "soon", "expected seconds"),
        ("EDGEFLEET_LEADER_LEASE", "0", "greater than 0"),
        ("EDGEFLEET_LEADER_LEASE", "1.5s", "'1.5s': expected a leader lease from 2 s to 60 s"),
        ("EDGEFLEET_LEADER_LEASE", "2m", "'2m': expected a leader lease from 2 s to 60 s"),
        ("EDGEFLEET_SITES_DIR", "  ", "non-empty"),
        ("EDGEFLEET_ADVERTISE_URL", "10.0.0.7:8000", "expected http://HOST:PORT"),
        ("EDGEFLEET_ADVERTISE_URL", "http://10.0.0.7", "expected http://HOST:PORT"),
        ("EDGEFLEET_ADVERTISE_URL", "http://:8000", "expected http://HOST:PORT"),
        ("EDGEFLEET_ADVERTISE_URL", "http://10.0.0.7:8000/api", "no path, query or login"),
        ("EDGEFLEET_ADVERTISE_URL", "http://10.0.0.7:port", "expected http://HOST:PORT"),
    ],
)
def test_bad_value_names_the_variable_and_what_is_expected(variable: str, value: str, says: str) -> None:
    with pytest.raises(ValueError, match=variable) as caught:
        Settings.from_env({variable: value})
    assert says in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_bad_override_names_the_option() -> None:
    with pytest.raises(ValueError, match=r"^listen='nowhere': expected HOST:PORT"):
        Settings.from_env({}, listen="nowhere")
    with pytest.raises(ValueError, match="unknown setting"):
        Settings.from_env({}, port=8000)


def test_database_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=r"EDGEFLEET_DATABASE_URL=.*cannot create the directory"):
        Settings.from_env({"EDGEFLEET_DATABASE_URL": f"sqlite:///{blocker}/sub/fleet.db"})


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(ValueError, match="flush_interval_s"):
        Settings(flush_interval_s=0)
    with pytest.raises(ValueError, match="listen_port"):
        Settings(listen_port=70000)
    with pytest.raises(ValueError, match=r"leader_lease_s=1\.0: expected a leader lease from 2 s to 60 s"):
        Settings(leader_lease_s=1.0)


def test_the_advertised_address_is_the_one_given_else_the_listen_address() -> None:
    given = Settings.from_env({"EDGEFLEET_ADVERTISE_URL": "http://10.0.0.7:8000/", "EDGEFLEET_LISTEN": "0.0.0.0:8000"})
    assert given.advertise_url == "http://10.0.0.7:8000"
    assert advertised_address(given) == "http://10.0.0.7:8000"
    assert advertised_address(Settings.from_env({"EDGEFLEET_LISTEN": "127.0.0.1:8123"})) == "http://127.0.0.1:8123"
    assert Settings.from_env({}).advertise_url is None


def test_the_leader_lease_is_taken_at_its_bounds_and_named_by_its_option_when_overridden() -> None:
    assert Settings.from_env({"EDGEFLEET_LEADER_LEASE": "2"}).leader_lease_s == 2.0
    assert Settings.from_env({"EDGEFLEET_LEADER_LEASE": "1m"}).leader_lease_s == 60.0
    assert Settings.from_env({"EDGEFLEET_LEADER_LEASE": "10s"}, leader_lease_s="3s").leader_lease_s == 3.0
    with pytest.raises(ValueError, match=r"^--leader-lease='61s': expected a leader lease"):
        Settings.from_env({}, leader_lease_s="61s")


# --- the kubeconfig (docs/inventory.md, "Reaching the clusters") ----------------------------------------------


def test_the_kubeconfig_is_the_usual_file_by_default_even_before_it_exists(tmp_path: Path) -> None:
    settings = Settings.from_env({"HOME": str(tmp_path)})
    assert settings.kubeconfig == tmp_path / ".kube" / "config"
    assert not (tmp_path / ".kube").exists()  # nothing reads it yet: the start does not depend on it


def test_inside_a_pod_the_kubeconfig_is_the_in_cluster_configuration(tmp_path: Path) -> None:
    assert Settings.from_env({"HOME": str(tmp_path), "KUBERNETES_SERVICE_HOST": "10.96.0.1"}).kubeconfig == IN_CLUSTER


def test_a_named_kubeconfig_wins_even_inside_a_pod(tmp_path: Path) -> None:
    (tmp_path / ".kube").mkdir()
    named = tmp_path / ".kube" / "fleet"
    named.write_text("apiVersion: v1\nkind: Config\n")
    environ = {"HOME": str(tmp_path), "KUBERNETES_SERVICE_HOST": "10.96.0.1", "EDGEFLEET_KUBECONFIG": "~/.kube/fleet"}
    assert Settings.from_env(environ).kubeconfig == named
    other = tmp_path / "other"
    other.write_text("")
    assert Settings.from_env(environ, kubeconfig=other).kubeconfig == other  # --kubeconfig wins over the variable


@pytest.mark.parametrize(
    ("environ", "overrides", "name"),
    [
        ({"EDGEFLEET_KUBECONFIG": "/nowhere/config"}, {}, "EDGEFLEET_KUBECONFIG"),
        ({}, {"kubeconfig": "/nowhere/config"}, "--kubeconfig"),
    ],
)
def test_a_named_kubeconfig_that_is_not_there_is_refused_naming_where_it_was_named(
    environ: dict[str, str], overrides: dict[str, str], name: str
) -> None:
    with pytest.raises(ValueError, match=f"^{name}='/nowhere/config': no such kubeconfig file"):
        Settings.from_env(environ, **overrides)


# --- the registry hosts directory (docs/releases.md, "Pinning images by digest") --------------------------------


def test_no_registry_is_asked_unless_a_hosts_directory_is_named(tmp_path: Path) -> None:
    assert Settings.from_env({"HOME": str(tmp_path)}).registry_config is None
    (tmp_path / "registries").mkdir()
    environ = {"HOME": str(tmp_path), "EDGEFLEET_REGISTRY_CONFIG": "~/registries"}
    assert Settings.from_env(environ).registry_config == tmp_path / "registries"


def test_a_named_registry_hosts_directory_that_is_not_there_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^EDGEFLEET_REGISTRY_CONFIG='/nowhere/registries': no such directory"):
        Settings.from_env({"EDGEFLEET_REGISTRY_CONFIG": "/nowhere/registries"})
