"""The local cluster's broker settings and the topic settings that go with them (issue 18 point 5): replication
factor 3 and ``min.insync.replicas=2`` from three nodes on, a static quorum of every node, and producers that
wait for every in-sync replica."""

from pathlib import Path

from cli.local_kafka import KafkaInfo, KafkaNode, _server_properties
from shared.kafka import topic_configs
from shared.settings import Settings
from shared.stream import Stage

PORTS = [(9101, 9201), (9102, 9202), (9103, 9203)]


def test_every_node_is_a_voter_of_one_static_quorum_with_its_own_listeners() -> None:
    props = [_server_properties(i, Path(f"/tmp/node-{i}"), PORTS, "pw") for i in (1, 2, 3)]
    assert {p["controller.quorum.voters"] for p in props} == {
        "1@127.0.0.1:9201,2@127.0.0.1:9202,3@127.0.0.1:9203"
    }
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert [p["advertised.listeners"] for p in props] == [f"CLIENT://127.0.0.1:{c}" for c, _ in PORTS]
    assert len({p["log.dirs"] for p in props}) == 3


def test_a_cluster_replicates_three_times_with_two_in_sync_internal_topics_included() -> None:
    props = _server_properties(2, Path("/tmp/node-2"), PORTS, "pw")
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor"):  # fmt: skip
        assert props[key] == "3"
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
    assert props["unclean.leader.election.enable"] == "false"


def test_one_node_keeps_the_single_broker_settings() -> None:
    props = _server_properties(1, Path("/tmp/one"), PORTS[:1], "pw")
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9201"
    assert props["offsets.topic.replication.factor"] == props["min.insync.replicas"] == "1"


def test_clients_of_a_cluster_get_every_node_and_its_replication_settings() -> None:
    nodes = [KafkaNode(i, c, k, 0, f"/n{i}") for i, (c, k) in enumerate(PORTS, start=1)]
    info = KafkaInfo(nodes=nodes, users={"admin": "a", "matching": "m"})
    assert info.bootstrap == "127.0.0.1:9101,127.0.0.1:9102,127.0.0.1:9103"
    env = info.login_env("matching")
    assert env["OFFSETSTREAM_KAFKA_REPLICATION_FACTOR"] == "3"
    assert env["OFFSETSTREAM_KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    settings = info.settings("admin")
    assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (3, 2)
    assert KafkaInfo.from_dict({"nodes": [n.__dict__ for n in nodes], "users": info.users}) == info


def test_topics_carry_min_insync_replicas_only_when_configured() -> None:
    assert "min.insync.replicas" not in topic_configs("remit.offsets.v1", Settings())
    configs = topic_configs("remit.offsets.v1.dlt", Settings(kafka_min_insync_replicas=2))
    assert configs["min.insync.replicas"] == "2"
    assert "retention.ms" in configs  # AlterConfigs replaces the whole set: both travel together


def test_the_stages_produce_with_acks_all_and_replicate_their_internal_topics(tmp_path: Path) -> None:
    stage = Stage("matching", Settings(kafka_replication_factor=3, data_dir=tmp_path))
    assert stage.app.conf.producer_acks == -1
    assert stage.app.conf.topic_replication_factor == 3
