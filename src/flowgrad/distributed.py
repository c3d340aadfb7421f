"""Collective communication between processes over MPI, with ``torch.distributed``'s names.

Data-parallel training runs one Python process per replica, started by MPI's launcher
(``mpiexec -n 4 python train.py``). Each process calls :func:`init_process_group`, which
takes its rank and the number of processes (the world size) from MPI, and then exchanges
arrays with the collectives below. A Tensor's array goes to MPI directly through the
buffer protocol (``Allreduce``/``Bcast`` on the NumPy array): nothing is pickled.

The MPI binding is mpi4py, an optional dependency: ``pip install 'flowgrad[distributed]'``
brings mpi4py and MPICH (with ``mpiexec``) into the virtual environment; with a system MPI
(Open MPI, MPICH, Intel MPI) install mpi4py alone, built against it.

Example (``mpiexec -n 2 python this.py`` prints ``[3. 3.]`` twice)::

    import flowgrad as fg
    import flowgrad.distributed as dist

    dist.init_process_group()
    x = fg.ones(2) * (dist.get_rank() + 1)
    dist.all_reduce(x)          # in place: 1 + 2
    print(x.numpy())
    dist.destroy_process_group()
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

from flowgrad import _backend
from flowgrad.tensor import Tensor

INSTALL_HINT = ("pip install 'flowgrad[distributed]' (mpi4py and MPICH, with mpiexec); with a "
                "system MPI such as Open MPI, pip install mpi4py")

_NOT_INITIALIZED = ("the default process group is not initialized: call "
                    "flowgrad.distributed.init_process_group() first (in every process "
                    "started by mpiexec)")


class ReduceOp:
    """Names of the reductions :func:`all_reduce` accepts (strings work as well)."""

    SUM = "sum"
    MEAN = "mean"
    AVG = "mean"  # PyTorch's name for the mean
    MAX = "max"
    MIN = "min"


_OPS = ("sum", "mean", "max", "min")

# The communicator of the default group (a duplicate of COMM_WORLD, so that flowgrad's
# messages never match a user's own on COMM_WORLD), or None before init.
_comm: Any = None
_previous_excepthook: Any = None


def _mpi() -> Any:
    """mpi4py's MPI module; importing it initializes MPI (once per process)."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeError(
            f"flowgrad.distributed needs mpi4py and an MPI library: {INSTALL_HINT}") from exc
    return MPI


def _world() -> Any:
    if _comm is None:
        raise RuntimeError(_NOT_INITIALIZED)
    return _comm


def init_process_group(backend: str | None = None, abort_on_exception: bool = True) -> None:
    """Join the default process group: every process started by ``mpiexec``.

    Rank and world size come from MPI (``MPI.COMM_WORLD``); a script started without
    ``mpiexec`` is a group of one. With ``abort_on_exception`` (the default, unlike PyTorch)
    an uncaught exception in any process prints its traceback prefixed with the rank and
    aborts the whole MPI job (``MPI_Abort``), so a failure on one rank ends the job with a
    non-zero exit instead of leaving the others waiting forever in a collective.

    Args:
        backend: ``None`` or ``"mpi"``, the only backend (accepted for PyTorch's spelling).
        abort_on_exception: install the abort-on-uncaught-exception hook described above.

    Raises:
        RuntimeError: already initialized, or mpi4py / an MPI library is missing (the
            message says how to install them).
        ValueError: a backend other than ``"mpi"``.
    """
    global _comm, _previous_excepthook
    if backend is not None and str(backend).lower() != "mpi":
        raise ValueError(f"flowgrad.distributed supports only the 'mpi' backend, got "
                         f"{backend!r}")
    if _comm is not None:
        raise RuntimeError("trying to initialize the default process group twice (call "
                           "destroy_process_group() first)")
    MPI = _mpi()
    _comm = MPI.COMM_WORLD.Dup()
    if abort_on_exception and _previous_excepthook is None:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _abort_on_exception


def _abort_on_exception(exc_type: type, exc: BaseException, tb: Any) -> None:
    """sys.excepthook: print the failing rank's traceback, then abort every process."""
    comm = _comm
    if comm is None or comm.Get_size() == 1:
        (_previous_excepthook or sys.__excepthook__)(exc_type, exc, tb)
        return
    rank = comm.Get_rank()
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    prefix = f"[rank {rank}] "
    sys.stderr.write("".join(prefix + line + "\n" for line in text.rstrip("\n").split("\n")))
    sys.stderr.flush()
    sys.stdout.flush()
    abort(1)


def abort(code: int = 1) -> None:
    """End every process of the job now with exit status ``code`` (``MPI_Abort``).

    What a process calls when it cannot go on: the other processes may be waiting in a
    collective that will never complete, and returning or raising would leave them hanging.
    Outside a process group (or in a group of one) this exits the process alone.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if _comm is not None and _comm.Get_size() > 1:
        _comm.Abort(int(code))
    os._exit(int(code))


# What MPI launchers put in each process's environment: MPICH/Hydra and Intel MPI (PMI),
# Open MPI, MVAPICH, and PMIx-based launchers (srun --mpi=pmix, prterun).
_LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
_LAUNCHER_RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


def launched_by_mpi() -> bool:
    """Whether this process was started by an MPI launcher (mpiexec, mpirun, srun).

    Read from the environment, without importing mpi4py, so a program can decide to join a
    process group (and ask for mpi4py) only when it runs under MPI.
    """
    return any(v in os.environ for v in _LAUNCHER_SIZE_VARS + _LAUNCHER_RANK_VARS)


def launcher_rank() -> int:
    """This process's rank as the launcher's environment says (0 when not under MPI)."""
    for v in _LAUNCHER_RANK_VARS:
        value = os.environ.get(v, "")
        if value.isdigit():
            return int(value)
    return 0


def is_available() -> bool:
    """Whether mpi4py can be imported (without initializing anything)."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def is_initialized() -> bool:
    """Whether :func:`init_process_group` has been called (and not destroyed since)."""
    return _comm is not None


def get_rank() -> int:
    """This process's rank, 0 to ``get_world_size() - 1``."""
    return int(_world().Get_rank())


def get_world_size() -> int:
    """The number of processes in the group."""
    return int(_world().Get_size())


def barrier() -> None:
    """Wait until every process of the group has reached this call."""
    _world().Barrier()


def _contiguous(tensor: Any) -> tuple[Any, Any]:
    """The array to hand to MPI, and the object whose data it belongs to."""
    arr = tensor.data if isinstance(tensor, Tensor) else tensor
    if not _backend.is_array(arr):
        raise TypeError(f"expected a flowgrad Tensor or an array, got {type(tensor).__name__}")
    if arr.flags.c_contiguous and arr.flags.writeable:
        return arr, None
    # MPI reads and writes one contiguous block; copy, then write the result back.
    return _backend.xp.ascontiguousarray(arr).copy(), arr


def all_reduce(tensor: Any, op: str = "sum") -> Any:
    """Reduce ``tensor`` over every process, in place; every process gets the result.

    Args:
        tensor: a flowgrad Tensor (its ``.data`` is overwritten) or a NumPy array, of the
            same shape and dtype on every process.
        op: ``"sum"``, ``"mean"`` (floating dtypes), ``"max"`` or ``"min"``, or a
            :class:`ReduceOp` name.

    Returns:
        ``tensor`` itself (PyTorch returns None; returning it lets calls chain).

    Raises:
        ValueError: an unknown ``op``.
        TypeError: ``"mean"`` of an integer tensor.
    """
    comm = _world()
    op = str(op).lower()
    if op == "avg":
        op = "mean"
    if op not in _OPS:
        raise ValueError(f"all_reduce op must be one of {list(_OPS)}, got {op!r}")
    arr, original = _contiguous(tensor)
    if op == "mean" and not _backend.is_floating(arr.dtype):
        raise TypeError(f"all_reduce(op='mean') needs a floating tensor, got {arr.dtype}")
    MPI = _mpi()
    mpi_op = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
    comm.Allreduce(MPI.IN_PLACE, arr, op=mpi_op)
    if op == "mean":
        arr /= comm.Get_size()
    if original is not None:
        _write_back(tensor, original, arr)
    return tensor


def broadcast(tensor: Any, src: int = 0) -> Any:
    """Overwrite ``tensor`` on every process with its value on process ``src``, in place.

    Args:
        tensor: a flowgrad Tensor or NumPy array, of the same shape and dtype everywhere.
        src: the rank that sends.

    Returns:
        ``tensor`` itself.

    Raises:
        ValueError: ``src`` is not a rank of the group.
    """
    comm = _world()
    size = comm.Get_size()
    if isinstance(src, bool) or not isinstance(src, int) or not 0 <= src < size:
        raise ValueError(f"broadcast src must be a rank in [0, {size - 1}], got {src!r}")
    arr, original = _contiguous(tensor)
    comm.Bcast(arr, root=src)
    if original is not None:
        _write_back(tensor, original, arr)
    return tensor


def _write_back(tensor: Any, original: Any, arr: Any) -> None:
    if original.flags.writeable:
        original[...] = arr
    elif isinstance(tensor, Tensor):
        tensor.data = arr
    else:
        raise ValueError("cannot reduce into a read-only array in place")


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's ``obj`` (small picklable metadata, not arrays), in rank order."""
    return list(_world().allgather(obj))


def local_world_size() -> int:
    """How many processes of the group run on this machine (shared-memory node)."""
    MPI = _mpi()
    node = _world().Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return int(node.Get_size())
    finally:
        node.Free()


def limit_blas_threads(threads: int | None = None) -> int:
    """Cap the BLAS/OpenMP threads of this process so the job does not oversubscribe cores.

    Each process of a data-parallel job runs its own matrix products; if every one used
    all cores (OpenBLAS' and MKL's default), the cores would be oversubscribed and
    everything slows down. The default gives each process an equal share: the cores this
    process may run on divided by the processes on this machine (at least 1). When the
    launcher already pinned the process to fewer cores (Open MPI binds by default) those
    cores are its share. Variables the user set (``OMP_NUM_THREADS``,
    ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``) win: then nothing is changed.

    Uses threadpoolctl, which changes the limits of the already-loaded BLAS at run time.

    Args:
        threads: the number to use instead of the computed share.

    Returns:
        The thread count now in force (0 when a user variable decided it, or when
        threadpoolctl is missing and nothing could be changed).
    """
    if threads is None:
        if any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                             "MKL_NUM_THREADS")):
            return 0
        threads = blas_threads_share(local_world_size() if is_initialized() else 1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return 0
    threadpool_limits(limits=int(threads))
    return int(threads)


def blas_threads_share(processes: int) -> int:
    """Cores this process may use divided among ``processes`` processes (at least 1)."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    if available < (os.cpu_count() or available):
        return available  # already pinned by the launcher: that is this process's share
    return max(1, available // max(1, int(processes)))


def find_mpiexec() -> str | None:
    """The MPI launcher: the virtual environment's own (the mpich package puts it beside
    Python), else ``mpiexec`` or ``mpirun`` on PATH; None if there is none."""
    import shutil

    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    return shutil.which("mpiexec") or shutil.which("mpirun")


def _is_open_mpi(mpiexec: str) -> bool:
    import subprocess

    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    text = (out.stdout + out.stderr).lower()
    return "open mpi" in text or "open-mpi" in text or "openrte" in text or "prrte" in text


def mpiexec_command(nproc: int, argv: list[str],
                    mpiexec: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that start ``argv`` as ``nproc`` MPI processes.

    Works with MPICH's and Open MPI's launchers: for Open MPI it adds ``--oversubscribe``
    (more processes than cores is allowed, as with MPICH) and, when running as root (in
    containers and CI), the two variables Open MPI requires to allow that. Each process's
    BLAS threads are set to its share of the cores (see :func:`blas_threads_share`) unless
    the caller's environment already sets them.

    Args:
        nproc: number of processes.
        argv: the program and its arguments.
        mpiexec: the launcher (default: :func:`find_mpiexec`).

    Returns:
        ``(command, env)`` for :func:`subprocess.run`.

    Raises:
        RuntimeError: no launcher found (the message says how to install one).
    """
    exe = mpiexec or find_mpiexec()
    if exe is None:
        raise RuntimeError(f"no mpiexec found: {INSTALL_HINT}")
    cmd = [exe, "-n", str(int(nproc))]
    env = dict(os.environ)
    if _is_open_mpi(exe):
        cmd.append("--oversubscribe")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
            env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    if not any(env.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                    "MKL_NUM_THREADS")):
        share = str(blas_threads_share(int(nproc)))
        for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[v] = share
    return cmd + list(argv), env


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Process ``src``'s ``obj`` on every process (small picklable metadata, not arrays)."""
    return _world().bcast(obj, root=src)


def destroy_process_group() -> None:
    """Leave the default group; collectives raise again until the next init.

    MPI itself stays initialized until the process exits (mpi4py finalizes it then).
    """
    global _comm, _previous_excepthook
    if _comm is None:
        raise RuntimeError(_NOT_INITIALIZED)
    comm, _comm = _comm, None
    comm.Free()
    if _previous_excepthook is not None and sys.excepthook is _abort_on_exception:
        sys.excepthook = _previous_excepthook
    _previous_excepthook = None
