"""More than one machine: JAX's own multi-process runtime (`jax.distributed.initialize`).

Start one process per machine (or per accelerator group), all with the same sweep:

    purejaxppo sweep ... --coordinator HOST:PORT --num-processes N --process-id I

or, from Python, `initialize(...)` *before anything else touches JAX* (gymnax's import already runs
a JAX computation, so call it before `from purejaxppo import make_train`; `import
purejaxppo.distributed` itself is safe), then `sweep(...)` as usual. After initialisation
`jax.devices()` lists every process's devices; `sweep` shards the flat settings x seeds axis over
that global mesh, each process computes the runs placed on its own devices, and the results are
gathered (`multihost_utils.process_allgather`) so that every process holds the whole sweep;
process 0 prints and saves it.

Without arguments, `initialize()` leaves everything to `jax.distributed.initialize()`, which reads
`JAX_COORDINATOR_ADDRESS` and detects SLURM, Open MPI, mpi4py, Kubernetes and Cloud TPU jobs.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple, Optional, Sequence

import jax

_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


class ProcessInfo(NamedTuple):
    """Where this process stands in the job."""

    process_index: int
    process_count: int
    local_devices: int
    global_devices: int


def _host(address: str) -> str:
    host = address.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_loopback(address: str) -> bool:
    """Whether `HOST:PORT` names this machine only (127.x.x.x, ::1, localhost)."""
    host = _host(address)
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, *,
               local_device_ids: Optional[Sequence[int]] = None,
               cpu_collectives: Optional[str] = "gloo",
               initialization_timeout: int = 300) -> ProcessInfo:
    """Join the multi-process job: `jax.distributed.initialize` with CPU collectives enabled.

    Args:
      coordinator_address: `HOST:PORT` of process 0, which runs the coordination service. A
        loopback address (127.0.0.1, localhost) is also the address the service binds to, so a
        single-machine test never listens on other interfaces; otherwise JAX binds all interfaces.
      num_processes: processes in the job.
      process_id: this process's index, `0 <= process_id < num_processes`.
      local_device_ids: restrict this process to these local accelerators.
      cpu_collectives: `jax_cpu_collectives_implementation` to set first; cross-process transfers
        between CPU devices (gathering results, progress callbacks) need one. `None` leaves it.
      initialization_timeout: seconds to wait for every process to join.

    Must be called before any JAX computation in this process (see the module docstring).
    Arguments left as None are filled by JAX (environment variables, cluster detection).
    """
    if cpu_collectives is not None:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    kwargs = {}
    if coordinator_address is not None and is_loopback(coordinator_address):
        kwargs["coordinator_bind_address"] = coordinator_address
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                   local_device_ids=local_device_ids,
                                   initialization_timeout=initialization_timeout, **kwargs)
    except RuntimeError as err:
        if "must be called before" in str(err):
            raise RuntimeError(
                f"{err}\npurejaxppo: call purejaxppo.distributed.initialize() first thing, before "
                f"importing purejaxppo's trainer or gymnax (gymnax's import runs a JAX "
                f"computation).") from err
        raise
    return process_info()


def process_info() -> ProcessInfo:
    """Index and count of processes and devices (a single process: `ProcessInfo(0, 1, n, n)`)."""
    return ProcessInfo(jax.process_index(), jax.process_count(), jax.local_device_count(),
                       jax.device_count())


def is_main_process() -> bool:
    """True on process 0, the one that prints and writes files."""
    return jax.process_index() == 0


def shutdown() -> None:
    """Leave the job (`jax.distributed.shutdown`); a no-op if `initialize` was not called."""
    jax.distributed.shutdown()
