"""django-q2's Redis broker with one connection pool per process.

django-q2 builds a new broker for every `async_task()` call, and its Redis broker opens a new
connection pool — so a new TCP connection to Redis — each time: one per webhook delivery or push
notification, about a third of the acknowledgement's CPU time in the webhook burst benchmark
(docs/PERFORMANCE.md). This broker hands every instance in a process the same client (a pool); a forked
process builds its own. Selected by settings.Q_CLUSTER["broker_class"] when REDIS_URL is set.
"""

from __future__ import annotations

import os

import redis
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf

_clients: dict[int, redis.Redis] = {}


class PooledRedisBroker(Redis):
    @staticmethod
    def get_connection(list_key: str | None = None) -> redis.Redis:
        pid = os.getpid()
        client = _clients.get(pid)
        if client is None:
            _clients.clear()  # a parent's pool is never used after a fork
            conf = Conf.REDIS
            client = redis.from_url(conf) if isinstance(conf, str) else redis.StrictRedis(**conf)
            _clients[pid] = client
        return client
