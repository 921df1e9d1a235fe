"""Heavy offline jobs on a compute backend: in this process (``local``) or on a Ray cluster (``ray``).

Two jobs, each giving the same result on both backends for the same settings (tested to equality):

- :func:`embed_texts` / :func:`backfill_embeddings`: MiniLM embeddings of logged texts. The texts are
  cut into encoder calls of ``batch_size`` on the driver; Ray Data streams those calls through
  ``map_batches`` on ``workers`` actors that each load the encoder once, the local backend runs the
  same calls in turn. Every call embeds the same texts with the same torch thread count on both, so
  the vectors are bitwise equal.
- :meth:`ComputeBackend.bootstrap_means`: the bootstrap of OPE split into ``bootstrap_partitions``
  independent parts (``evaluation.ope.bootstrap_partitions``), as Ray tasks or one after another.

Ray is imported only when the ``ray`` backend is used (``pip install 'rewardloop[ray]'``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from rewardloop.config import ComputeConfig
from rewardloop.encoders import EMBEDDING_DIM, MiniLMEncoder, default_backend
from rewardloop.evaluation.ope import bootstrap_means, bootstrap_partitions
from rewardloop.store import Store
from rewardloop.store.repository import iter_decisions

FloatArray = npt.NDArray[np.float64]


class ComputeError(RuntimeError):
    """The compute backend cannot run: Ray is not installed, or its cluster cannot be reached."""


def _ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ComputeError("compute.backend ray needs Ray: pip install 'rewardloop[ray]'") from err
    return ray


@dataclass
class ComputeBackend:
    """Where the jobs run; a context manager that connects to Ray (and leaves a Ray it did not start).

    Examples
    --------
    >>> with ComputeBackend(ComputeConfig(bootstrap_partitions=2)) as backend:
    ...     backend.bootstrap_means(np.array([[0.0, 1.0, 1.0]]), 4, 0).shape
    (1, 4)
    """

    config: ComputeConfig = field(default_factory=ComputeConfig)
    _started_ray: bool = field(default=False, init=False)

    @property
    def name(self) -> str:
        return self.config.backend

    def __enter__(self) -> ComputeBackend:
        if self.name == "ray":
            ray = _ray()
            if not ray.is_initialized():
                address = self.config.ray_address
                try:
                    ray.init(
                        address=address,
                        # A local Ray gets exactly the CPUs its actors ask for (none left idle, none short).
                        num_cpus=None if address else self.config.workers * self.config.threads_per_worker,
                        include_dashboard=False,
                        log_to_driver=False,
                    )
                except ConnectionError as err:
                    raise ComputeError(f"compute.ray_address {address!r}: {err}") from None
                self._started_ray = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._started_ray:
            _ray().shutdown()
            self._started_ray = False

    def bootstrap_means(
        self, samples: FloatArray, n_bootstrap_samples: int, random_state: int | None
    ) -> FloatArray:
        """:func:`bootstrap_means` of ``samples`` (m, n) in ``bootstrap_partitions`` parts: (m, B).

        A :data:`~rewardloop.evaluation.ope.bootstrap.Resampler` for ``evaluate_off_policy(resample=...)``.
        """
        parts = bootstrap_partitions(n_bootstrap_samples, random_state, self.config.bootstrap_partitions)
        x = np.atleast_2d(np.asarray(samples, dtype=np.float64))  # (m, n)
        if self.name == "ray":
            ray = _ray()
            task = ray.remote(num_cpus=1)(bootstrap_means)
            ref = ray.put(x)  # one copy in the object store, read by every task
            outs = ray.get([task.remote(ref, b, seed) for b, seed in parts])
        else:
            outs = [bootstrap_means(x, b, seed) for b, seed in parts]
        means: FloatArray = np.concatenate(outs, axis=1)  # (m, B)
        return means if np.ndim(samples) == 2 else means[0]

    def map_trials(
        self,
        trial: Callable[[Any, int], dict[str, Any]],
        job: Any,
        n_trials: int,
        *,
        reuse_workers: bool = True,
    ) -> list[dict[str, Any]]:
        """``[trial(job, i) for i in range(n_trials)]``: in turn here, as Ray Tune trials on ``ray``.

        ``trial`` returns a JSON-able dict. On Ray, ``job`` goes once to the object store
        (``tune.with_parameters``), each trial asks for ``threads_per_worker`` CPUs and at most
        ``workers`` run at once; Tune's own search is not used, so the trials (drawn by the caller)
        are the local backend's. A worker process runs trial after trial (``reuse_workers``, Tune's
        ``reuse_actors``), as the local process does: it imports torch and rewardloop and reads the
        job once, instead of once a trial (seconds of CPU each, docs/scaling.md);
        ``reuse_workers=False`` starts a fresh process for every trial.
        """
        if self.name == "local":
            return [trial(job, i) for i in range(n_trials)]
        return _tune_trials(trial, job, n_trials, self.config, reuse_workers)

    def map_parts(self, fn: Callable[[Any, Any], Any], shared: Any, parts: Sequence[Any]) -> list[Any]:
        """``[fn(shared, part) for part in parts]``, in order: Ray tasks of one CPU on ``ray``."""
        if self.name == "local":
            return [fn(shared, part) for part in parts]
        ray = _ray()
        task = ray.remote(num_cpus=1)(fn)
        ref = ray.put(shared)  # one copy in the object store, read by every task
        return list(ray.get([task.remote(ref, part) for part in parts]))

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """:func:`embed_texts` with this backend's settings."""
        return np.concatenate(list(self.iter_embeddings(texts)) or [np.empty((0, EMBEDDING_DIM), np.float32)])

    def iter_embeddings(self, texts: Sequence[str]) -> Iterator[npt.NDArray[np.float32]]:
        """Embeddings of ``texts`` in order, one (≤ batch_size, 384) array per encoder call."""
        calls = _calls(texts, self.config.batch_size)
        threads, encoder = self.config.threads_per_worker, default_backend()
        if self.name == "local":
            embed = _EmbedCalls(threads, encoder)
            for call in calls:
                yield embed({"texts": [call]})["embedding"][0]
            return
        yield from self._ray_embeddings(calls, threads, encoder)

    def _ray_embeddings(
        self, calls: list[list[str]], threads: int, encoder: str
    ) -> Iterator[npt.NDArray[np.float32]]:
        ray = _ray()
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # results in the order of the texts
        ds = ray.data.from_items([{"texts": call} for call in calls])
        ds = ds.map_batches(
            _EmbedCalls,
            fn_constructor_args=(threads, encoder),
            batch_size=1,  # one encoder call per batch: exactly the local backend's calls
            concurrency=self.config.workers,
            num_cpus=threads,
            batch_format="numpy",
        )
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for vectors in batch["embedding"]:
                yield np.asarray(vectors, dtype=np.float32)


def _tune_trials(
    trial: Callable[[Any, int], dict[str, Any]],
    job: Any,
    n_trials: int,
    config: ComputeConfig,
    reuse_workers: bool,
) -> list[dict[str, Any]]:
    """Run ``trial(job, i)`` for every i as Ray Tune trials; the outcomes in trial order."""
    import shutil
    import tempfile

    from ray import tune

    def trainable(params: dict[str, Any], job: Any = None) -> None:
        tune.report({"outcome": json.dumps(trial(job, int(params["trial"])))})

    storage = tempfile.mkdtemp(prefix="rewardloop-tune-")  # Tune's bookkeeping, removed afterwards
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(trainable, job=job), {"cpu": config.threads_per_worker}),
            param_space={"trial": tune.grid_search(list(range(n_trials)))},
            tune_config=tune.TuneConfig(max_concurrent_trials=config.workers, reuse_actors=reuse_workers),
            run_config=tune.RunConfig(storage_path=storage, name="sweep", verbose=0),
        )
        grid = tuner.fit()
        outcomes = []
        for result in (grid[k] for k in range(len(grid))):
            if result.error is not None or result.metrics is None:
                raise ComputeError(f"Ray Tune: a trial failed outside the learner: {result.error}")
            outcomes.append(json.loads(result.metrics["outcome"]))
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    return sorted(outcomes, key=lambda o: int(o["trial"]))


def _calls(texts: Sequence[str], batch_size: int) -> list[list[str]]:
    if isinstance(texts, str):
        raise TypeError("embed takes a sequence of texts, not one string")
    return [list(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]


class _EmbedCalls:
    """The ``map_batches`` callable: loads the encoder once (per Ray actor, or once locally)."""

    def __init__(self, threads: int, backend: str) -> None:
        # No cache: a text seen twice is embedded in its own call, as on the other backend.
        self.encoder = MiniLMEncoder(cache_size=0, num_threads=threads, backend=backend)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        # (n_calls, ≤ batch_size, 384): one call per batch on both backends, so the shapes stack.
        return {
            "embedding": np.stack([self.encoder.encode([str(t) for t in call]) for call in batch["texts"]])
        }


def embed_texts(texts: Sequence[str], config: ComputeConfig | None = None) -> npt.NDArray[np.float32]:
    """MiniLM embeddings of ``texts``, shape (n_texts, 384), on the configured backend."""
    with ComputeBackend(config or ComputeConfig()) as backend:
        return backend.embed(texts)


@dataclass(frozen=True)
class BackfillResult:
    """What :func:`backfill_embeddings` wrote."""

    path: Path
    n_texts: int
    n_skipped: int
    seconds: float
    backend: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "n_texts": self.n_texts,
            "n_skipped": self.n_skipped,
            "seconds": round(self.seconds, 3),
            "backend": self.backend,
        }


def backfill_embeddings(
    store: Store, out: Path, backend: ComputeBackend, *, policy: str | None = None, version: str | None = None
) -> BackfillResult:
    """Embed the text of every logged decision (of ``policy``/``version``) into a Parquet file.

    ``out`` gets one row per decision with a text, in store order: ``decision_id`` (string) and
    ``embedding`` (384 float32). Decisions without a text are counted in ``n_skipped``. Rows are
    written as the encoder calls finish, so the vectors never all sit in memory; the ids and texts do
    (about 100 bytes a decision).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    ids: list[str] = []
    texts: list[str] = []
    skipped = 0
    for page in iter_decisions(store, policy=policy, version=version):
        for decision in page:
            if decision.text:
                ids.append(decision.id)
                texts.append(decision.text)
            else:
                skipped += 1
    schema = pa.schema([("decision_id", pa.string()), ("embedding", pa.list_(pa.float32(), EMBEDDING_DIM))])
    out.parent.mkdir(parents=True, exist_ok=True)
    done = 0
    with pq.ParquetWriter(out, schema) as writer:
        for vectors in backend.iter_embeddings(texts):
            flat = pa.array(vectors.reshape(-1), type=pa.float32())
            column = pa.FixedSizeListArray.from_arrays(flat, EMBEDDING_DIM)
            writer.write_table(pa.table([pa.array(ids[done : done + len(vectors)]), column], schema=schema))
            done += len(vectors)
    return BackfillResult(out, done, skipped, time.perf_counter() - t0, backend.name)


def read_embeddings(path: Path) -> tuple[list[str], npt.NDArray[np.float32]]:
    """The ``(decision ids, embeddings (n, 384))`` of a :func:`backfill_embeddings` file."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    flat = table.column("embedding").combine_chunks().flatten().to_numpy()
    return table.column("decision_id").to_pylist(), flat.reshape(-1, EMBEDDING_DIM).astype(np.float32)


__all__ = [
    "BackfillResult",
    "ComputeBackend",
    "ComputeError",
    "backfill_embeddings",
    "embed_texts",
    "read_embeddings",
]
