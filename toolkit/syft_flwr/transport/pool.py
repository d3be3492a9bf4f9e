"""Many datasite nodes of one process served by a few worker threads.

A simulation of a thousand datasites needs a thousand inboxes served, not a thousand
threads: each node's endpoint asks the process's watcher to call back when a file arrives,
and the callback queues that node on a small :class:`~concurrent.futures.ThreadPoolExecutor`.
A node is drained by one worker at a time (files of one inbox are handled in order); an idle
node costs nothing. Each node's work runs inside ``context`` (e.g. its party's log file).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager

from loguru import logger

from syft_flwr.logs import log_failure
from syft_flwr.transport.node import DatasiteNode, NodeResult


class _Served:
    """A node in the pool: its result-to-be and whether a worker has it or must take it."""

    def __init__(self, node: DatasiteNode, context: Callable[[], AbstractContextManager]):
        self.node = node
        self.context = context
        self.future: Future[NodeResult] = Future()
        self.queued = False  # a worker has it, or will take it
        self.again = False  # a file arrived while a worker had it: drain once more
        self.finished = False  # closed (or being closed): never drained again


class NodePool:
    """Serves :class:`DatasiteNode` s on ``workers`` threads (default: two per core, at least
    four: a ClientApp may wait on I/O or a library that releases the GIL)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or max(4, 2 * (os.cpu_count() or 1))
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="syft-flwr-node")
        self._lock = threading.Lock()
        self._served: dict[int, _Served] = {}
        self._closed = False

    def serve(
        self,
        node: DatasiteNode,
        context: Callable[[], AbstractContextManager] = contextlib.nullcontext,
    ) -> Future[NodeResult]:
        """Start serving ``node``; the future holds its :class:`NodeResult` once a stop
        message (or :meth:`stop`) ends it. Raises like :meth:`DatasiteNode.open`."""
        served = _Served(node, context)
        with self._lock:
            if self._closed:
                raise RuntimeError("this NodePool is shut down")
            self._served[id(node)] = served
        try:
            node.open(on_arrival=lambda: self._schedule(served))
        except BaseException:
            with self._lock:
                del self._served[id(node)]
            raise
        with context():
            logger.debug(f"{node.email}: serving app {node.app_name} from {node.inbox}")
        self._schedule(served)  # the files that came before the watch began
        return served.future

    def _schedule(self, served: _Served) -> None:
        with self._lock:
            if served.finished or self._closed:
                return
            if served.queued:
                served.again = True
                return
            served.queued = True
        self._executor.submit(self._drain, served)

    def _drain(self, served: _Served) -> None:
        node = served.node
        while True:
            with self._lock:
                served.again = False
                if served.finished:
                    served.queued = False
                    return
            try:
                with served.context():
                    node.drain()
                    finished = node.stopped or node.result.reason == "stop-message"
                    if finished:
                        self._finish(served)
                        return
            except BaseException as exc:  # the node's own errors are in its result
                with served.context():
                    log_failure(f"datasite {node.email} crashed", exc)
                self._finish(served, exc)
                return
            with self._lock:
                if not served.again:
                    served.queued = False
                    return

    def _finish(self, served: _Served, error: BaseException | None = None) -> None:
        with self._lock:
            if served.finished:
                return
            served.finished = True
            self._served.pop(id(served.node), None)
        self._close(served, error)

    @staticmethod
    def _close(served: _Served, error: BaseException | None = None) -> None:
        result = served.node.close()
        if error is None:
            served.future.set_result(result)
        else:
            served.future.set_exception(error)

    def stop(self, node: DatasiteNode) -> None:
        """End serving ``node`` now (its result says "stopped" unless it had finished)."""
        node.stop()
        with self._lock:
            served = self._served.get(id(node))
            if served is None or served.finished:
                return
            if served.queued:  # its worker sees the stop and finishes it
                served.again = True
                return
            served.finished = True
            del self._served[id(node)]
        self._close(served)

    def shutdown(self) -> None:
        """Stop every node still served and the workers."""
        with self._lock:
            served = [s.node for s in self._served.values()]
        for node in served:
            self.stop(node)
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=True)

    def __enter__(self) -> NodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
